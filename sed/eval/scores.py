"""The validation scores a run can report and select on, and how the best of them is picked.

One owner for the names `val_macro_f1`, `val_psds`, `val_psds1`, `val_frame_ap`: each `Score` says which
way is better, what computing it costs, and the `TrainConfig` flag that turns it on (the
event F1 is always computed). The model selection of `sed.training.trainer`, the Tune
report's best-so-far values (`search.trainable`) and the leaderboards' best epoch
(`search.rows`) all pick with `best_index`: a NaN or missing score never wins, ties keep the
earlier epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Score:
    """A validation score: its column name, which way is better, its cost and its switch."""

    name: str
    #: "max": higher is better (all the event scores here).
    mode: str
    #: The TrainConfig flag that computes it at every validation (None: always computed).
    flag: str | None
    cost: str


#: The validation scores, the first being the reference's selection score.
VALIDATION_SCORES: tuple[Score, ...] = (
    Score("val_macro_f1", "max", None, "sed_eval event F1, always computed (~0.1 s for 200 clips)"),
    Score(
        "val_psds", "max", "compute_val_psds", "psds_eval 2020 PSDS at val_psds_thresholds operating points (costly)"
    ),
    Score("val_psds1", "max", "compute_val_psds1", "sed_scores_eval threshold-free PSDS1 (~0.1 s for 200 clips)"),
    Score(
        "val_frame_ap",
        "max",
        "compute_val_frame_ap",
        "scikit-learn frame-level macro average precision, threshold-free (~0.05 s for 100 clips)",
    ),
)
SCORES: dict[str, Score] = {score.name: score for score in VALIDATION_SCORES}
#: The names, in table order (the values of `TrainConfig.selection_metric`).
VALIDATION_SCORE_NAMES: tuple[str, ...] = tuple(SCORES)


def comparable(value: Any, mode: str = "max") -> float:
    """A score as a number where larger is better: NaN, None or a non-number -> -inf."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) if mode == "max" else -float(value)
    return float("-inf")


def best_index(values: Iterable[Any], mode: str = "max") -> int | None:
    """The position of the best finite value (the first of equals); None when there is none."""
    best: int | None = None
    best_value = float("-inf")
    for index, value in enumerate(values):
        key = comparable(value, mode)
        if key > best_value:
            best, best_value = index, key
    return best


__all__ = ["SCORES", "Score", "VALIDATION_SCORES", "VALIDATION_SCORE_NAMES", "best_index", "comparable"]
