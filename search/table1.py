"""The best configuration of each group, printed as the paper's Table 1 (a `groups:` space).

One row per group of the space (in the order the space lists them): the values its search
tuned on validation (`fixed ...` for a group trained once at its values), the public-eval
event macro F1, PSDS (DCASE 2020, psds_eval) and the threshold-free PSDS1 / PSDS2 of
its final runs as mean [95 % CI] over seeds (`final_summary.parquet`), the paper's macro
F1 / PSDS beside them where the group is one of its rows (`sed.presets.PAPER_TABLE1`),
and whether the row beats the `none` row and the `baseline` row.

"Beats" is decided per metric by non-overlapping Student-t 95 % CIs over the seeds
(`search.summary.ControlComparison.verdict`): `>` the row's CI lies above the other row's,
`<` below, `=` they overlap, `?` fewer than 2 completed seeds on a side. With three seeds
this is conservative (a true difference often reads `=`). No paired test across seeds is
made: seed k gives two rows the same data order and initial weights, but three pairs give
a t-test 2 degrees of freedom, and how much the pairing correlates the runs is unmeasured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from sed.presets import PAPER_TABLE1

from .space import Space
from .summary import ControlComparison

#: (final_summary column stem, heading) of the scores shown, in order.
TABLE1_METRICS: tuple[tuple[str, str], ...] = (
    ("eval_macro_f1", "F1"),
    ("eval_psds", "PSDS"),
    ("eval_psds1", "PSDS1"),
    ("eval_psds2", "PSDS2"),
)
#: the rows every other row is compared with, when the space has them
REFERENCE_ROWS: tuple[str, ...] = ("none", "baseline")
LEGEND = (
    "vs none / vs baseline: per metric (F1, PSDS, PSDS1, PSDS2), '>' the row's 95 % CI lies above that "
    "row's, '<' below, '=' they overlap, '?' fewer than 2 seeds; paper: its Table 1 macro F1 / PSDS"
)


def _triple(row: Mapping[str, Any] | None, metric: str) -> tuple[float, float, float]:
    if row is None:
        return (math.nan, math.nan, math.nan)
    return tuple(_num(row.get(f"{metric}_{part}")) for part in ("mean", "ci95_low", "ci95_high"))  # type: ignore[return-value]


def _num(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def tuned_values(space: Space, search: pd.DataFrame, trial_id: Any) -> str:
    """`key=value` of the params the group's best trial took ('fixed ...': a group trained at its values)."""
    rows = search[search["trial_id"].astype(str) == str(trial_id)] if "trial_id" in search else search.iloc[:0]
    if rows.empty:
        return "-"
    row = rows.iloc[0]
    group = next((g for g in space.groups if g.name == row.get("group")), None)
    parts = ["fixed"] if group is not None and not group.searched else []
    for name in space.params:
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        parts.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts) or "-"


def verdicts(row: Mapping[str, Any], other: Mapping[str, Any] | None) -> str:
    """One mark per metric of TABLE1_METRICS: > < = ? (blank: no such row; '.': the row itself)."""
    if other is None:
        return ""
    if row is other:
        return "."
    marks = {"beats": ">", "below": "<", "overlap": "=", "unknown": "?"}
    out = ""
    for metric, _ in TABLE1_METRICS:
        cmp = ControlComparison(metric, "", _triple(row, metric), _triple(other, metric), 0, 0)
        out += marks[cmp.verdict]
    return out


def table1_frame(space: Space, search: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per group that reached the final stage, in the space's group order."""
    by_label: dict[str, dict[str, Any]] = {}
    if summary is not None and not summary.empty:
        by_label = {str(r["label"]): r for r in summary.to_dict("records") if not r.get("control")}
    refs = {name: by_label.get(name) for name in REFERENCE_ROWS}
    rows = []
    for group in space.groups:
        record = by_label.get(group.name)
        if record is None:
            continue
        item: dict[str, Any] = {
            "row": group.name,
            "tuned": tuned_values(space, search, record.get("search_trial_id")),
            "seeds": int(record.get("n_seeds", 0) or 0),
        }
        for metric, heading in TABLE1_METRICS:
            mean, low, high = _triple(record, metric)
            item[heading] = (
                f"{mean:.3f} [{low:.3f}, {high:.3f}]"
                if math.isfinite(low)
                else (f"{mean:.3f}" if math.isfinite(mean) else "-")
            )
        paper = PAPER_TABLE1.get(group.name)
        item["paper F1/PSDS"] = f"{paper[0]:.3f}/{paper[1]:.3f}" if paper else "-"
        for name in REFERENCE_ROWS:
            item[f"vs {name}"] = verdicts(record, refs[name]) or "-"
        rows.append(item)
    return pd.DataFrame(rows)


def format_table1(space: Space, search: pd.DataFrame, summary: pd.DataFrame | None) -> str:
    """The printed table: a title, the rows and the legend ('' without a final stage row)."""
    if not space.groups or summary is None or summary.empty:
        return ""
    frame = table1_frame(space, search, summary)
    if frame.empty:
        return ""
    paper_rows = sum(g.name in PAPER_TABLE1 for g in space.groups)
    title = "Table 1" if paper_rows else "best configuration of each group"
    lines = [f"== {title}: each group tuned on validation, its best x seeds on the public evaluation set =="]
    columns = list(frame.columns)
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells)
    lines.append(LEGEND)
    return "\n".join(lines)


__all__ = ["LEGEND", "TABLE1_METRICS", "format_table1", "table1_frame", "tuned_values", "verdicts"]
