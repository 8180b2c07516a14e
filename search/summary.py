"""The final stage's summary: mean, std and Student-t 95 % CI per configuration, and the control comparison.

`summarize_final` is the function behind `final_summary.parquet` (one row per config of
`final.parquet`, over its seeds); `control_comparison` sets the rank-1 config's CI beside
the no-augmentation control's (beats / overlap / below).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .rows import FINAL_METRICS, _float

#: Where the scores of FINAL_METRICS live: their 95 % intervals are clipped to it (`mean_std_ci95`).
SCORE_BOUNDS: tuple[float, float] = (0.0, 1.0)


def mean_std_ci95(
    values: Iterable[float], bounds: tuple[float, float] | None = None
) -> tuple[int, float, float, float, float]:
    """(n, mean, sample std, low, high) with the Student-t 95 % interval of the mean.

    half-width = t.ppf(0.975, n - 1) * std / sqrt(n); NaN std/CI for n < 2.
    NaN inputs (e.g. a failed seed) are left out. With `bounds` (a score's range)
    the interval is clipped to it: the t interval is symmetric and, for 2-3 seeds
    near 0 or 1, reaches values the score cannot take.
    """
    from scipy import stats

    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = int(data.size)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(data.mean())
    if n < 2:
        return n, mean, math.nan, math.nan, math.nan
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return n, mean, std, low, high


def summarize_final(final: pd.DataFrame, metrics: Sequence[str] = FINAL_METRICS) -> pd.DataFrame:
    """One row per config_id: n_seeds and mean/std/CI of each metric, in search-rank order."""
    rows = []
    if final.empty:
        return pd.DataFrame(columns=["config_id", "label", "rank", "n_seeds"])
    ok = final[final["status"] == "COMPLETED"] if "status" in final else final
    for cid, group in final.groupby("config_id", sort=False):
        good = ok[ok["config_id"] == cid]
        first = group.iloc[0]
        row: dict[str, Any] = {
            "config_id": cid,
            "label": first.get("label"),
            "rank": first.get("rank"),
            "search_trial_id": first.get("search_trial_id"),
            # rows written before the column existed read NaN there: not a control
            "control": bool(first.get("control")) if pd.notna(first.get("control")) else False,
            "n_seeds": int(len(good)),
            "seeds": ",".join(str(int(s)) for s in sorted(good["seed"])) if len(good) else "",
        }
        for metric in metrics:
            if metric not in good:
                continue
            n, mean, std, low, high = mean_std_ci95(good[metric].astype(float), SCORE_BOUNDS)
            row[f"{metric}_mean"] = mean
            row[f"{metric}_std"] = std
            row[f"{metric}_ci95_low"] = low
            row[f"{metric}_ci95_high"] = high
        rows.append(row)
    out = pd.DataFrame(rows)
    if "rank" in out and out["rank"].notna().all():
        out = out.sort_values("rank", kind="stable").reset_index(drop=True)
    return out


@dataclass(frozen=True)
class ControlComparison:
    """The best final configuration (search rank 1) against the control, on one metric."""

    metric: str
    best_label: str
    best: tuple[float, float, float]  # mean, CI low, CI high
    control: tuple[float, float, float]
    n_best: int
    n_control: int

    @property
    def difference(self) -> float:
        return self.best[0] - self.control[0]

    @property
    def verdict(self) -> str:
        """`beats` (CI above the control's), `below` (CI below), `overlap` or `unknown` (n < 2)."""
        if not all(np.isfinite(v) for v in (*self.best, *self.control)):
            return "unknown"
        if self.best[1] > self.control[2]:
            return "beats"
        if self.best[2] < self.control[1]:
            return "below"
        return "overlap"

    def sentence(self) -> str:
        def ci(values: tuple[float, float, float]) -> str:
            mean, low, high = values
            return f"{mean:.4f} [{low:.4f}, {high:.4f}]" if np.isfinite(low) else f"{mean:.4f}"

        head = (
            f"{self.metric}: best config {self.best_label} {ci(self.best)} (n={self.n_best}) vs control "
            f"{ci(self.control)} (n={self.n_control}), difference {self.difference:+.4f}: "
        )
        return (
            head
            + {
                "beats": "the best configuration beats the control (its 95 % CI lies above the control's)",
                "below": "the best configuration is WORSE than the control (its 95 % CI lies below)",
                "overlap": "not distinguishable from the control at this number of seeds (the 95 % CIs overlap)",
                "unknown": "no 95 % CI (fewer than 2 completed seeds on a side)",
            }[self.verdict]
        )


def control_comparison(summary: pd.DataFrame, metric: str) -> ControlComparison | None:
    """Rank-1 config vs the control row of final_summary (None without both)."""
    if summary is None or summary.empty or "control" not in summary:
        return None
    is_control = summary["control"].fillna(False).astype(bool)
    controls, configs = summary[is_control], summary[~is_control]
    if controls.empty or configs.empty or f"{metric}_mean" not in summary:
        return None
    best, control = configs.iloc[0], controls.iloc[0]

    def triple(row: pd.Series) -> tuple[float, float, float]:
        return tuple(_float(row.get(f"{metric}_{part}")) for part in ("mean", "ci95_low", "ci95_high"))  # type: ignore[return-value]

    return ControlComparison(
        metric=metric,
        best_label=str(best.get("label") or best.get("config_id")),
        best=triple(best),
        control=triple(control),
        n_best=int(best.get("n_seeds", 0)),
        n_control=int(control.get("n_seeds", 0)),
    )
