"""Second phase: tune the post-processing per class on the validation scores, apply it to the public eval.

One job: from the score files a run already wrote (sed.eval.outputs:
``validation/`` and ``public_eval/``, each with ``scores/raw/``,
``durations.tsv``, ``ground_truth.tsv``), choose per class

* a median-filter length and a decision threshold for the event F1,
* a median-filter length for PSDS1, and one for PSDS2 (threshold-free),

on the **validation** set only, then score the public evaluation set with
them. Nothing is trained and the public evaluation set never influences a
choice. The run's own files are not touched: the result goes to
``postprocess/postprocess.json`` (the values, validation before / after,
public eval tuned) and ``postprocess/public_eval/detections.tsv`` (the tuned
event-F1 detections) beside them.

How each is chosen (the DCASE 2024 baseline tunes per-class median filters
in a second phase; docs/design.md "Post-processing tuning"):

* Event F1 is a mean of per-class F1s, each depending on its class's
  detections only, so classes are tuned independently. For every window of
  ``WINDOWS`` (and the run's own), sed_scores_eval's collar-based
  ``best_fscore`` (the sed_eval 2020 settings: onset collar 200 ms, offset
  collar max(200 ms, 20 % of the event)) gives each class's best F1 over
  all thresholds and that threshold; each class takes its best (window,
  threshold). The choice is then scored with sed_eval (the leaderboard's
  library) and a class whose sed_eval F1 is below the untuned one keeps the
  run's window and threshold: the tuned validation macro F1 is never below
  the untuned one. A class without reference events keeps the run's values.
* PSDS1 is not a sum over classes (its variance penalty), so each class
  takes the window of its best single-class PSDS1 (sed_scores_eval's
  per-class values) and the combination is kept only when its PSDS1 on the
  validation set is at least the untuned one (else the run's window for every
  class). PSDS2 tries the same per-class windows, kept on the same condition
  for PSDS2 (a grid search of its own would cost one more pass per window, the
  dearest one: cross-triggers).

Cost: two sed_scores_eval passes per window of ``WINDOWS`` (collar-based for
F1, PSDS1) over the validation clips, a few more to check the choices and
to score the public evaluation set; linear in the clips (benchmarks/README.md,
"Post-processing tuning and compute figures").
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sed.eval.classwise import ScoreSet, event_f1_of_tables, psds_of

__all__ = ["WINDOWS", "TunedPostprocessing", "tune", "apply", "tune_outputs", "POSTPROCESS_DIR", "POSTPROCESS_FILE"]

#: Median-filter lengths tried (frames of 63.75 ms: 0.06-2.6 s, about x1.7 apart); the run's own is
#: always added. Each costs one sed_scores_eval pass over the validation clips per metric tuned on it.
WINDOWS: tuple[int, ...] = (1, 3, 5, 9, 15, 25, 41)
#: Folder (beside validation/ and public_eval/) and file of the result.
POSTPROCESS_DIR = "postprocess"
POSTPROCESS_FILE = "postprocess.json"


@dataclass
class TunedPostprocessing:
    """The tuned values (one per class) and the validation scores before / after."""

    windows_f1: dict[str, int]
    thresholds_f1: dict[str, float]
    windows_psds1: dict[str, int]
    windows_psds2: dict[str, int]
    #: the run's own median window and threshold (the untuned post-processing)
    median_window: int
    threshold: float
    #: {metric: {"untuned": x, "tuned": y}} on the validation set
    validation: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_score_set(folder: Path | str) -> ScoreSet:
    """``folder/scores/raw``, ``folder/durations.tsv`` and ``folder/ground_truth.tsv`` (sed.eval.outputs)."""
    from sed.score import read_durations, read_events, read_score_folder

    folder = Path(folder)
    names, seconds = read_durations(folder / "durations.tsv")
    _, _, _, tables = read_score_folder(folder / "scores" / "raw", names)
    return ScoreSet(tables, names, seconds, read_events(folder / "ground_truth.tsv", "ground truth"))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _best_f1_per_window(scores: ScoreSet, window: int) -> tuple[dict[str, float], dict[str, float]]:
    """({class: best collar F1}, {class: its threshold}) over all thresholds, one window for every class."""
    from sed.eval.classwise import COLLARS
    from sed.eval.events import quiet_metric_library

    if not scores.classes:
        return {}, {}
    with quiet_metric_library():
        from sed_scores_eval import collar_based

        f, _, _, thresholds, _ = collar_based.best_fscore(
            None, scores.truth, deltas=scores.deltas("collar", window), **COLLARS
        )
    classes = [c for c in f if c not in ("macro_average", "micro_average")]
    return {c: float(f[c]) for c in classes}, {c: float(thresholds[c]) for c in classes}


def _tune_f1(scores: ScoreSet, grid: Sequence[int], window: int, threshold: float, result: TunedPostprocessing) -> None:
    best: dict[str, tuple[float, int, float]] = {}
    for w in grid:
        values, thresholds = _best_f1_per_window(scores, w)
        for label, value in values.items():
            if _finite(thresholds[label]) and (label not in best or value > best[label][0]):
                best[label] = (value, w, thresholds[label])
    windows = {label: best[label][1] if label in best else window for label in scores.labels}
    thresholds_f1 = {label: best[label][2] if label in best else threshold for label in scores.labels}
    untuned = event_f1_of_tables(scores, dict.fromkeys(scores.labels, window), dict.fromkeys(scores.labels, threshold))
    tuned = event_f1_of_tables(scores, windows, thresholds_f1)
    reverted = [
        label
        for label in scores.labels
        if not (
            _finite(untuned["per_class_f1"][label]) and tuned["per_class_f1"][label] >= untuned["per_class_f1"][label]
        )
    ]
    for label in reverted:
        windows[label], thresholds_f1[label] = window, threshold
    if reverted:
        tuned = event_f1_of_tables(scores, windows, thresholds_f1)
    result.windows_f1, result.thresholds_f1 = windows, thresholds_f1
    result.validation["macro_f1"] = {"untuned": untuned["macro_f1"], "tuned": tuned["macro_f1"]}


def _tune_psds(
    scores: ScoreSet, grid: Sequence[int], window: int, which: str, candidate: dict[str, int] | None = None
) -> tuple[dict[str, int], dict[str, float]]:
    """Per-class windows for `which`: each class's best single-class PSDS over `grid` (or the `candidate`
    given), kept when the combination is not worse than the untuned window on `scores`."""
    untuned_windows = dict.fromkeys(scores.labels, window)
    base, _ = psds_of(scores, untuned_windows, which, cached=True)
    if not _finite(base):
        return untuned_windows, {"untuned": base, "tuned": base}
    if candidate is None:
        best: dict[str, tuple[float, int]] = {}
        for w in grid:
            _, single = psds_of(scores, dict.fromkeys(scores.labels, w), which, cached=True)
            for label, value in single.items():
                if _finite(value) and (label not in best or value > best[label][0]):
                    best[label] = (value, w)
        candidate = {label: best[label][1] if label in best else window for label in scores.labels}
    value, _ = psds_of(scores, candidate, which, cached=True)
    if _finite(value) and value >= base:
        return candidate, {"untuned": base, "tuned": value}
    return untuned_windows, {"untuned": base, "tuned": base}


def tune(
    scores: ScoreSet, median_window: int, threshold: float, windows: Sequence[int] = WINDOWS
) -> TunedPostprocessing:
    """Per-class windows and thresholds chosen on `scores` (a validation set; module docstring)."""
    grid = sorted({int(w) for w in windows} | {int(median_window)})
    result = TunedPostprocessing({}, {}, {}, {}, int(median_window), float(threshold))
    _tune_f1(scores, grid, int(median_window), float(threshold), result)
    result.windows_psds1, result.validation["psds1"] = _tune_psds(scores, grid, int(median_window), "psds1")
    # PSDS2 tries PSDS1's windows (one PSDS2 pass per window in them, not per window of the grid)
    result.windows_psds2, result.validation["psds2"] = _tune_psds(
        scores, grid, int(median_window), "psds2", candidate=dict(result.windows_psds1)
    )
    return result


def apply(scores: ScoreSet, tuned: TunedPostprocessing) -> dict[str, Any]:
    """The tuned post-processing's numbers on another set (the public evaluation set)."""
    f1 = event_f1_of_tables(scores, tuned.windows_f1, tuned.thresholds_f1)
    psds1, _ = psds_of(scores, tuned.windows_psds1, "psds1")
    psds2, _ = psds_of(scores, tuned.windows_psds2, "psds2")
    return {
        "macro_f1": f1["macro_f1"],
        "micro_f1": f1["micro_f1"],
        "per_class_f1": f1["per_class_f1"],
        "psds1": psds1,
        "psds2": psds2,
    }


def tune_outputs(
    outputs: Path | str, median_window: int, threshold: float, windows: Sequence[int] = WINDOWS
) -> dict[str, Any]:
    """Tune on ``outputs/validation``, apply to ``outputs/public_eval``; writes ``outputs/postprocess/``.

    Returns the record written to ``postprocess.json``: ``tuned`` (the values and the
    validation before / after), ``public_eval`` (tuned numbers), ``seconds``, ``versions``.
    """
    from sed.eval.classwise import decode_tables
    from sed.eval.metrics import metric_versions
    from sed.eval.outputs import write_events
    from sed.io import write_json

    outputs = Path(outputs)
    for part in ("validation", "public_eval"):
        if not (outputs / part / "scores" / "raw").is_dir() or not (outputs / part / "ground_truth.tsv").is_file():
            raise FileNotFoundError(
                f"{outputs / part}: no scores/raw/ or ground_truth.tsv. Fix: give a folder written by "
                "python -m sed.train (or a final trial's outputs/ folder), which has validation/ and public_eval/."
            )
    from sed.eval.events import quiet_metric_library

    start = time.perf_counter()
    with quiet_metric_library():  # dcase_util's pkg_resources warning on first import, among others
        validation = read_score_set(outputs / "validation")
        tuned = tune(validation, median_window, threshold, windows)
        public = read_score_set(outputs / "public_eval")
        scores = apply(public, tuned)
    folder = outputs / POSTPROCESS_DIR
    write_events(
        folder / "public_eval" / "detections.tsv", decode_tables(public, tuned.windows_f1, tuned.thresholds_f1)
    )
    record = {
        "tuned": tuned.to_dict(),
        "public_eval": scores,
        "windows_tried": sorted({int(w) for w in windows} | {int(median_window)}),
        "seconds": time.perf_counter() - start,
        "versions": metric_versions(kernel_path=False),  # the tuning runs no torch code
    }
    write_json(folder / POSTPROCESS_FILE, record)
    return record


def read_record(outputs: Path | str) -> Mapping[str, Any] | None:
    """``postprocess.json`` of an outputs folder, None when it was not tuned."""
    import json

    path = Path(outputs) / POSTPROCESS_DIR / POSTPROCESS_FILE
    return json.loads(path.read_text()) if path.is_file() else None
