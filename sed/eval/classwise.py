"""Post-processing with a median window and a decision threshold per class, applied to score files.

One job: given a score folder's raw frame probabilities (``scores/raw/``,
sed.eval.outputs) and one median-filter length and one threshold per class,
produce the filtered score tables, the detections, and their leaderboard
numbers (event F1 of sed_eval with the 2020 settings; the threshold-free
PSDS1 / PSDS2 of sed_scores_eval). sed.eval.pp_tuning chooses the values,
``python -m sed.score --median-window JSON --class-thresholds JSON`` applies
the same functions, so a leaderboard's stored values reproduce its tuned
numbers from the files alone.

Decisions written down here:

* Each clip is filtered on its own frames (the rows of its score file: the
  frames that start before its end), with scipy's ``reflect`` border, class
  by class. For a clip of 10 s or more this is exactly the filter of
  sed.eval.postprocess on the model's output; for a shorter clip the frames
  past its end (silence padding the model saw) are not in the file, so the
  border differs there.
* Thresholding the filtered scores at ``t`` is thresholding then filtering
  (a median filter commutes with a threshold), so the events are those
  sed.eval.postprocess decodes with that class's window and threshold.
* The event F1 is scored against the reference with same-class overlaps
  merged (``sed.eval.events.merge_overlaps``), as ``evaluate_predictions``
  does for the leaderboard's untuned numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from sed.eval.postprocess import PostprocessError, decode_events, empty_events

__all__ = ["ScoreSet", "per_class", "filter_tables", "scored_tables", "decode_tables", "event_f1_of_tables", "psds_of"]


class ScoreSet:
    """A set's raw score tables (by clip id), its clip names, durations and reference (merged)."""

    def __init__(
        self,
        tables: Mapping[str, pd.DataFrame],
        filenames: Sequence[str],
        durations: Sequence[float],
        reference: pd.DataFrame,
    ) -> None:
        from sed.eval.events import merge_overlaps
        from sed.eval.threshold_free import audio_id

        self.filenames = [str(n) for n in filenames]
        self.ids = [audio_id(n) for n in self.filenames]
        self.tables = {key: tables[key] for key in self.ids}
        self.durations = [float(d) for d in durations]
        self.by_id = dict(zip(self.ids, self.durations, strict=True))
        first = self.tables[self.ids[0]]
        self.labels = [str(c) for c in first.columns[2:]]
        self.frame_step = float(first["offset"].iloc[0] - first["onset"].iloc[0])
        self.reference, _ = merge_overlaps(reference)
        #: the classes with reference events (the ones sed_scores_eval scores) and its ground truth
        self.classes = sorted({str(label) for label in self.reference["event_label"]})
        self.truth: dict[str, list[tuple[float, float, str]]] = {key: [] for key in self.ids}
        for name, onset, offset, label in self.reference[["filename", "onset", "offset", "event_label"]].itertuples(
            index=False, name=None
        ):
            clip = audio_id(name)
            if clip not in self.truth:
                raise PostprocessError(
                    f"the reference has events for clip {clip!r}, which has no scores; score every clip of the reference."
                )
            self.truth[clip].append((float(onset), float(offset), str(label)))
        self._filtered: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self._deltas: dict[tuple[str, int], dict[str, Any]] = {}

    def column(self, label: str, window: int) -> dict[str, np.ndarray]:
        """One class's scores of every clip after a median filter of `window` frames (cached)."""
        key = (label, int(window))
        if key not in self._filtered:
            out = {}
            for clip in self.ids:
                values = self.tables[clip][label].to_numpy(dtype=np.float64)
                out[clip] = median_filter(values, size=int(window), mode="reflect") if window > 1 else values
            self._filtered[key] = out
        return self._filtered[key]

    def deltas(self, kind: str, window: int) -> dict[str, Any]:
        """sed_scores_eval's intermediate-statistics deltas of every clip and class (with reference
        events) at one window for all, ``kind`` = collar | psds1 | psds2 (cached).

        A class's deltas depend only on its own scores (the ground truth of the other
        classes enters PSDS2's cross-trigger counts, their scores do not), so per-class
        windows combine by taking each class's deltas from its window (:meth:`combined`):
        one pass per window instead of one per combination tried.
        """
        key = (kind, int(window))
        if key not in self._deltas:
            from sed.eval.events import quiet_metric_library
            from sed.eval.threshold_free import PSDS1, PSDS2

            tables = scored_tables(self, dict.fromkeys(self.labels, int(window)))
            with quiet_metric_library():
                from sed_scores_eval import collar_based, intersection_based

                if kind == "collar":
                    self._deltas[key] = collar_based.intermediate_statistics_deltas(tables, self.truth, **COLLARS)
                else:
                    settings = {"psds1": PSDS1, "psds2": PSDS2}[kind]
                    self._deltas[key] = intersection_based.intermediate_statistics_deltas(
                        tables,
                        self.truth,
                        dtc_threshold=settings["dtc_threshold"],
                        gtc_threshold=settings["gtc_threshold"],
                        cttc_threshold=settings["cttc_threshold"],
                    )
        return self._deltas[key]

    def combined(self, kind: str, windows: Mapping[str, int]) -> dict[str, Any]:
        """Deltas of per-class windows, each class's from :meth:`deltas` at its own window."""
        per_window = {label: self.deltas(kind, windows[label]) for label in self.classes}
        return {clip: {label: per_window[label][clip][label] for label in self.classes} for clip in self.ids}


#: sed_eval's 2020 collar settings (sed.eval.metrics) as sed_scores_eval's collar-based arguments.
COLLARS: dict[str, float] = {"onset_collar": 0.2, "offset_collar": 0.2, "offset_collar_rate": 0.2}


def per_class(value: int | float | Mapping[str, Any], labels: Sequence[str], what: str) -> dict[str, Any]:
    """A scalar or a {class: value} mapping as one value per class of `labels` (a missing class is refused)."""
    if isinstance(value, Mapping):
        missing = [label for label in labels if label not in value]
        if missing:
            raise PostprocessError(
                f"{what} has no value for class {missing[0]!r} ({len(missing)} missing); "
                f"give one per class of the score files: {list(labels)}."
            )
        return {label: value[label] for label in labels}
    return {label: value for label in labels}


def _check_windows(windows: Mapping[str, Any]) -> dict[str, int]:
    out = {}
    for label, window in windows.items():
        if isinstance(window, bool) or int(window) != window or int(window) < 1:
            raise PostprocessError(
                f"median window of class {label!r} is {window!r}; it must be an integer >= 1 (frames)."
            )
        out[label] = int(window)
    return out


def filter_tables(
    scores: ScoreSet, windows: Mapping[str, int], classes: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Score tables with each class median-filtered by its own window (sed_scores_eval's format);
    ``classes``: only those columns (default every class)."""
    windows = _check_windows(per_class(windows, scores.labels, "median windows"))
    labels = list(scores.labels if classes is None else classes)
    columns = {label: scores.column(label, windows[label]) for label in labels}
    out = {}
    for clip in scores.ids:
        table = scores.tables[clip]
        data = {"onset": table["onset"].to_numpy(), "offset": table["offset"].to_numpy()}
        data.update({label: columns[label][clip] for label in labels})
        out[clip] = pd.DataFrame(data)
    return out


def scored_tables(scores: ScoreSet, windows: Mapping[str, int]) -> dict[str, pd.DataFrame] | None:
    """The filtered tables of the classes with reference events (what sed_scores_eval scores); None: no event."""
    if not scores.classes:
        return None
    return filter_tables(scores, windows, scores.classes)


def decode_tables(scores: ScoreSet, windows: Mapping[str, int], thresholds: Mapping[str, float]) -> pd.DataFrame:
    """Detections (``filename onset offset event_label``) at one window and threshold per class."""
    windows = _check_windows(per_class(windows, scores.labels, "median windows"))
    thresholds = per_class(thresholds, scores.labels, "thresholds")
    frames = max(len(t) for t in scores.tables.values())
    parts = []
    for label in scores.labels:
        column = scores.column(label, windows[label])
        probs = np.zeros((len(scores.ids), frames, 1), dtype=np.float64)
        for row, clip in enumerate(scores.ids):
            probs[row, : len(column[clip]), 0] = column[clip]
        threshold = float(thresholds[label])
        if not math.isfinite(threshold) or threshold > 1.0:
            continue  # no frame reaches it: no event of this class
        parts.append(
            decode_events(
                probs,
                scores.filenames,
                [label],
                threshold=max(threshold, 0.0),
                median_window=1,
                frame_step=scores.frame_step,
                durations=scores.durations,
            )
        )
    events = pd.concat(parts, ignore_index=True) if parts else empty_events()
    if events.empty:
        return empty_events()
    order = {name: i for i, name in enumerate(scores.filenames)}
    rank = {label: i for i, label in enumerate(scores.labels)}
    events = events.assign(_f=events["filename"].map(order), _c=events["event_label"].map(rank))
    events = events.sort_values(["_f", "onset", "_c"], kind="stable").drop(columns=["_f", "_c"])
    return events.reset_index(drop=True)


def event_f1_of_tables(scores: ScoreSet, windows: Mapping[str, int], thresholds: Mapping[str, float]) -> dict[str, Any]:
    """sed_eval event F1 (``macro_f1``, ``micro_f1``, ``per_class_f1``) of :func:`decode_tables`' detections."""
    from sed.eval.metrics import event_f1

    detections = decode_tables(scores, windows, thresholds)
    return event_f1(scores.reference, detections, scores.filenames, scores.labels)


def psds_of(
    scores: ScoreSet, windows: Mapping[str, int], which: str, cached: bool = False
) -> tuple[float, dict[str, float]]:
    """(PSDS, per-class PSDS) of sed_scores_eval, ``which`` = psds1 | psds2, on the per-class filtered scores.

    NaN without reference events, and PSDS2 NaN with a single class that has some
    (sed.eval.threshold_free). ``cached``: from :meth:`ScoreSet.deltas` (the same numbers;
    cheaper when many window combinations of one set are scored).
    """
    from sed.eval.events import quiet_metric_library
    from sed.eval.threshold_free import PSDS1, PSDS2

    if not scores.classes or (which == "psds2" and len(scores.classes) < 2):
        return math.nan, {}
    settings = {"psds1": PSDS1, "psds2": PSDS2}[which]
    windows = _check_windows(per_class(windows, scores.labels, "median windows"))
    with quiet_metric_library():
        from sed_scores_eval import intersection_based

        if cached:
            value, single, *_ = intersection_based.psds(
                None, scores.truth, scores.by_id, deltas=scores.combined(which, windows), **settings
            )
        else:
            tables = scored_tables(scores, windows)
            value, single, *_ = intersection_based.psds(tables, scores.truth, scores.by_id, **settings)
    return float(value), {str(k): float(v) for k, v in single.items()}
