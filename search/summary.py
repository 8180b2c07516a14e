"""The final stage's summary: mean, std and Student-t 95 % CI per configuration, and the control comparison.

`summarize_final` is the function behind `final_summary.parquet` (one row per config of
`final.parquet`, over its seeds); `control_comparison` sets the rank-1 config's CI beside
the no-augmentation control's (beats / overlap / below); `paired_comparison` compares the
two seed by seed (the final stage trains both with the same seeds, hence the same
initialisation and batches), with the paired t-test and the Wilcoxon signed-rank test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .rows import COST_COLUMNS, FINAL_METRICS, _float

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


def _is_control(value: Any) -> bool:
    """A final row's `control` value; rows written before the column existed read NaN there: not a control."""
    return bool(value) if pd.notna(value) else False


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
            "control": _is_control(first.get("control")),
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
        for column in COST_COLUMNS:
            if column in good:
                values = pd.to_numeric(good[column], errors="coerce")
                row[f"{column}_mean"] = float(values.mean()) if values.notna().any() else float("nan")
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


def _best_and_control(summary: pd.DataFrame | None) -> tuple[pd.Series, pd.Series] | None:
    """The rank-1 configuration's row and the control's row of final_summary (None without both)."""
    if summary is None or summary.empty or "control" not in summary:
        return None
    is_control = summary["control"].fillna(False).astype(bool)
    controls, configs = summary[is_control], summary[~is_control]
    if controls.empty or configs.empty:
        return None
    return configs.iloc[0], controls.iloc[0]


def control_comparison(summary: pd.DataFrame, metric: str) -> ControlComparison | None:
    """Rank-1 config vs the control row of final_summary (None without both)."""
    pair = _best_and_control(summary)
    if pair is None or f"{metric}_mean" not in summary:
        return None
    best, control = pair

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


#: The level of the paired test's verdict (two-sided).
PAIRED_ALPHA: float = 0.05


@dataclass(frozen=True)
class PairedComparison:
    """The rank-1 final configuration minus the control, seed by seed, on one metric.

    Both are trained with the same seeds (the same initialisation, batches and
    augmentation draws up to where the objectives differ), so the per-seed
    difference removes most of the seed-to-seed spread that makes the two
    configurations' intervals overlap. `t_p` is the two-sided paired t-test,
    `wilcoxon_p` the two-sided Wilcoxon signed-rank test (scipy's exact distribution
    for small n without ties; no normality assumed; with n seeds it cannot go below 2 / 2**n: 0.0625 with 5).
    """

    metric: str
    best_label: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    t_p: float
    wilcoxon_p: float

    @property
    def verdict(self) -> str:
        """`beats` / `below` (paired t-test p < PAIRED_ALPHA, by the sign of the mean), `same`, or `unknown`."""
        if len(self.seeds) < 2 or not np.isfinite(self.t_p):
            return "unknown"
        if self.t_p < PAIRED_ALPHA:
            return "beats" if self.mean > 0 else "below"
        return "same"

    def sentence(self) -> str:
        n = len(self.seeds)
        head = f"{self.metric}, paired by seed ({n} seed{'s' if n != 1 else ''}"
        head += f": {', '.join(str(s) for s in self.seeds)})" if n else ")"
        if n == 0:
            return head + ": no seed completed for both the best configuration and the control"
        ups = sum(d > 0 for d in self.differences)
        body = f": {self.best_label} minus control {self.mean:+.4f}"
        if np.isfinite(self.low):
            body += f" [{self.low:+.4f}, {self.high:+.4f}]"
        body += f", higher on {ups} of {n} seeds"
        if np.isfinite(self.t_p):
            body += f", paired t-test p = {self.t_p:.3g}"
        if np.isfinite(self.wilcoxon_p):
            body += f", Wilcoxon p = {self.wilcoxon_p:.3g}"
        level = f"{PAIRED_ALPHA:g}"
        return (
            head
            + body
            + {
                "beats": f": the best configuration beats the control (paired t-test p < {level})",
                "below": f": the best configuration is WORSE than the control (paired t-test p < {level})",
                "same": f": no difference at p < {level} with these seeds",
                "unknown": ": no paired test (fewer than 2 seeds with both, or no spread)",
            }[self.verdict]
        )


def paired_comparison(final: pd.DataFrame, summary: pd.DataFrame, metric: str) -> PairedComparison | None:
    """The rank-1 config of `summary` minus the control, over the seeds both completed in `final`.

    None without a control row, a configuration, or the metric. The 95 % interval is
    the Student-t interval of the mean difference.
    """
    from scipy import stats

    pair = _best_and_control(summary)
    if pair is None or final is None or final.empty or metric not in final or "seed" not in final:
        return None
    best, control = pair
    done = final[final["status"] == "COMPLETED"] if "status" in final else final

    def by_seed(config_id: Any) -> dict[int, float]:
        rows = done[done["config_id"] == config_id]
        values = pd.to_numeric(rows[metric], errors="coerce")
        return {int(seed): float(v) for seed, v in zip(rows["seed"], values) if np.isfinite(v)}

    ours, theirs = by_seed(best["config_id"]), by_seed(control["config_id"])
    seeds = tuple(sorted(set(ours) & set(theirs)))
    differences = tuple(ours[s] - theirs[s] for s in seeds)
    _, mean, _, low, high = mean_std_ci95(differences)
    t_p = w_p = math.nan
    if len(seeds) >= 2 and float(np.std(differences)) > 0:
        t_p = float(stats.ttest_rel([ours[s] for s in seeds], [theirs[s] for s in seeds]).pvalue)
    if len(seeds) >= 2 and any(differences):
        w_p = float(stats.wilcoxon(differences).pvalue)
    return PairedComparison(
        metric=metric,
        best_label=str(best.get("label") or best.get("config_id")),
        seeds=seeds,
        differences=differences,
        mean=mean,
        low=low,
        high=high,
        t_p=t_p,
        wilcoxon_p=w_p,
    )


#: A final run whose selected model comes from the first quarter of its epochs gets a note (`early_epoch_notes`).
EARLY_EPOCH_FRACTION = 0.25


def early_epoch_notes(final: pd.DataFrame | None, selection_metric: str) -> list[str]:
    """One sentence per COMPLETED final run that kept an epoch in the first quarter of its run.

    Its validation score never came back to that early epoch's: the seed barely learned
    (or got worse at once). Selected on a ranking score such as the frame AP, such a model
    may never reach the decision threshold, so its F1 at 0.5 can be exactly 0 while its
    PSDS and tuned F1 are not (benchmarks/README.md, "The recipe on real recordings");
    the sentence gives those scores beside each other. Runs of fewer than 4 epochs, and
    rows without `model_epoch` (0 = unknown), get none.
    """
    needed = {"model_epoch", "epochs_run", "seed"}
    if final is None or final.empty or not needed <= set(final.columns):
        return []
    done = final[final["status"] == "COMPLETED"] if "status" in final else final
    notes = []
    order = [c for c in ("rank", "seed") if c in done.columns]
    for _, row in done.sort_values(order, kind="stable").iterrows():
        kept, run = _float(row.get("model_epoch")), _float(row.get("epochs_run"))
        if not (np.isfinite(kept) and np.isfinite(run)) or kept < 1 or run < 4 or kept > EARLY_EPOCH_FRACTION * run:
            continue
        label = row.get("label")
        name = (
            "the control"
            if _is_control(row.get("control"))
            else (label if isinstance(label, str) and label else str(row["config_id"]))
        )
        scores = [
            f"{what} {value:.3f}"
            for what, column in (
                ("public-eval F1 at the threshold", "eval_macro_f1"),
                ("PSDS", "eval_psds"),
                ("tuned F1", "eval_macro_f1_tuned"),
            )
            if np.isfinite(value := _float(row.get(column)))
        ]
        notes.append(
            f"note: {name}, seed {int(row['seed'])}, kept epoch {int(kept)} of {int(run)} (its best {selection_metric} "
            "on validation came that early: the seed barely learned)" + (": " + ", ".join(scores) if scores else "")
        )
    return notes
