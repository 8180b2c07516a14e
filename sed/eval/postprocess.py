"""Frame probabilities -> binary activity -> events (DCASE 2020 task 4 post-processing).

Facts reproduced (docs/reference.md, "Post-processing and metrics"):

* a global threshold (0.5 by default) is applied first; like dcase_util's
  ``ProbabilityEncoder.binarization(..., 'global_threshold')`` used by the
  baseline, a frame is active when ``p >= threshold``;
* then a median filter of ``median_window`` frames (7 = 0.45 s) along time
  only, the same window for every class (scipy's default ``reflect`` border;
  computed by counting, :func:`median_filter_time`, with scipy's results);
* frames are converted to seconds with the CRNN output step
  ``4 * 255 / 16000 = 63.75 ms`` (``sed.constants.FRAME_STEP_S``).

A run of active frames ``first..last`` becomes one event with
``onset = first * step`` and ``offset = (last + 1) * step``, clipped to the
clip duration (157 frames x 63.75 ms = 10.009 s is longer than a 10 s clip).

Deviation from the reference, on purpose: the clip duration is each file's
own (``Split.durations``: the durations TSV where the dataset has one, else
the audio's length), not a fixed 10 s, and an event that would start at or
after it is dropped. The reference decodes every clip on the same 157-frame
grid and leaves the last offset at 10.009 s; psds_eval and sed_scores_eval
need every event inside the duration they are given for its file, and clips
of other lengths (DESED's public evaluation set has one of 11 s) would
otherwise lose or gain time. For a 10 s clip the only change is a last
offset of 10.0 s instead of 10.009 s (docs/faithfulness.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from sed.constants import CLIP_SECONDS, FRAME_STEP_S
from sed.errors import UserError

#: Column order of every event table in sedtune (the DESED strong TSV columns).
EVENT_COLUMNS: tuple[str, ...] = ("filename", "onset", "offset", "event_label")


class PostprocessError(UserError):
    """Invalid post-processing input; the message names the argument/config key and the fix."""


def empty_events() -> pd.DataFrame:
    """An event table with no rows and the standard columns and dtypes."""
    return pd.DataFrame(
        {
            "filename": pd.Series([], dtype=object),
            "onset": pd.Series([], dtype=np.float64),
            "offset": pd.Series([], dtype=np.float64),
            "event_label": pd.Series([], dtype=object),
        }
    )


def _check_probs(strong_probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(strong_probs)
    if probs.ndim != 3:
        raise PostprocessError(
            f"strong_probs must have shape [files, frames, classes], got {probs.shape}; "
            "add a leading file axis for a single clip (probs[None])."
        )
    if not (np.issubdtype(probs.dtype, np.floating) or probs.dtype == np.bool_):
        raise PostprocessError(
            f"strong_probs must hold float probabilities, got dtype {probs.dtype}; "
            "pass the sigmoid outputs of the strong head."
        )
    return probs


def _check_params(threshold: float, median_window: int) -> None:
    if not 0.0 <= float(threshold) <= 1.0 or np.isnan(threshold):
        raise PostprocessError(
            f"threshold={threshold!r} is outside [0, 1]; set config key 'threshold' "
            "to a probability (the baseline uses 0.5)."
        )
    if isinstance(median_window, bool) or int(median_window) != median_window or median_window < 1:
        raise PostprocessError(
            f"median_window={median_window!r} must be an integer >= 1 (frames); set config key "
            "'median_window' to 1 for no filtering or 7 for the baseline's 0.45 s."
        )


def binarize(strong_probs: np.ndarray, threshold: float = 0.5, median_window: int = 7) -> np.ndarray:
    """Threshold frame probabilities, then median-filter each class along time.

    Args:
        strong_probs: ``[N, T, C]`` frame-level probabilities.
        threshold: a frame is active when ``p >= threshold`` (dcase_util global threshold).
        median_window: window in frames of the median filter over time; 1 disables it.

    Returns:
        ``[N, T, C]`` bool array of active frames.
    """
    probs = _check_probs(strong_probs)
    _check_params(threshold, median_window)
    active = probs >= threshold
    if int(median_window) > 1:
        # Time axis only: the filter never mixes files or classes.
        active = median_filter_time(active, int(median_window))
    return active


def median_filter_time(active: np.ndarray, window: int) -> np.ndarray:
    """``scipy.ndimage.median_filter(active, size=(1, window, 1))`` of a bool ``[N, T, C]`` array, by counting.

    The median of a window of booleans is True when enough of it is True, so a
    running count (a cumulative sum) gives it in one pass instead of a sort per
    frame: the same values, 8-13x faster for windows 7-11 (benchmarks/README.md,
    "Metric cost"). scipy's conventions, kept exactly: the window of frame ``i`` is
    ``i - window // 2 .. i - window // 2 + window - 1`` (origin 0, so an even
    window reaches one frame further back), its median is the sorted element at
    index ``window // 2`` (True when at least ``window - window // 2`` frames
    are), and the border is ``reflect`` (numpy's ``symmetric`` padding). A clip
    shorter than the window goes to scipy, whose reflection of a very short
    axis differs from numpy's padding (tests/test_postprocess.py checks both).
    """
    n_frames = active.shape[1]
    if n_frames < window:
        return median_filter(active, size=(1, window, 1))
    before = window // 2
    padded = np.pad(active, ((0, 0), (before, window - 1 - before), (0, 0)), mode="symmetric")
    counts = np.zeros((active.shape[0], n_frames + window, active.shape[2]), dtype=np.int32)
    np.cumsum(padded, axis=1, dtype=np.int32, out=counts[:, 1:])
    return (counts[:, window:] - counts[:, :-window]) >= window - window // 2


def _durations_array(durations: Sequence[float] | np.ndarray | None, n_files: int) -> np.ndarray:
    if durations is None:
        return np.full(n_files, CLIP_SECONDS, dtype=np.float64)
    dur = np.asarray(durations, dtype=np.float64)
    if dur.shape != (n_files,):
        raise PostprocessError(
            f"durations has {dur.size} entries for {n_files} files; pass one duration in seconds "
            "per file (Split.durations), or None for 10 s clips."
        )
    if not np.all(np.isfinite(dur)) or np.any(dur <= 0):
        bad = int(np.flatnonzero(~np.isfinite(dur) | (dur <= 0))[0])
        raise PostprocessError(
            f"durations[{bad}] = {dur[bad]!r} is not a positive number of seconds; "
            "fix the duration of that file in the durations TSV."
        )
    return dur


def decode_events(
    strong_probs: np.ndarray,
    filenames: Sequence[str],
    labels: Sequence[str],
    threshold: float = 0.5,
    median_window: int = 7,
    frame_step: float = FRAME_STEP_S,
    durations: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Turn frame probabilities into an event table.

    Args:
        strong_probs: ``[N, T, C]`` frame probabilities, file ``i`` is ``filenames[i]``
            and class ``c`` is ``labels[c]``.
        filenames: N file names, as in the reference metadata.
        labels: C class names.
        threshold, median_window: see :func:`binarize`.
        frame_step: seconds per output frame (63.75 ms for the 2020 CRNN).
        durations: seconds per file (default 10 s); events are clipped to it and
            events starting at or after it are dropped.

    Returns:
        DataFrame with columns filename, onset, offset, event_label, sorted by
        file (in the order of ``filenames``), onset, then class order. Files with no
        event have no row.
    """
    probs = _check_probs(strong_probs)
    n_files, _, n_classes = probs.shape
    if len(filenames) != n_files:
        raise PostprocessError(
            f"{len(filenames)} filenames for {n_files} files in strong_probs; pass one name per "
            "row of strong_probs, in the same order."
        )
    if len(labels) != n_classes:
        raise PostprocessError(
            f"{len(labels)} labels for {n_classes} classes in strong_probs; pass the label list "
            "the model was built with, in output order."
        )
    if not frame_step > 0:
        raise PostprocessError(f"frame_step={frame_step!r} must be > 0 seconds (0.06375 for the 2020 CRNN).")
    dur = _durations_array(durations, n_files)

    active = binarize(probs, threshold, median_window)
    # [N, C, T + 2] with a silent frame at both ends: every run has exactly one
    # rising and one falling edge, and np.nonzero visits them in (file, class, time)
    # order, so the k-th rise pairs with the k-th fall.
    padded = np.zeros((n_files, n_classes, active.shape[1] + 2), dtype=np.int8)
    padded[:, :, 1:-1] = active.transpose(0, 2, 1)
    edges = np.diff(padded, axis=2)
    file_i, class_i, start = np.nonzero(edges == 1)
    _, _, stop = np.nonzero(edges == -1)  # stop = last active frame + 1

    onset = start * float(frame_step)
    offset = np.minimum(stop * float(frame_step), dur[file_i])
    keep = onset < dur[file_i]
    file_i, class_i, onset, offset = file_i[keep], class_i[keep], onset[keep], offset[keep]
    if file_i.size == 0:
        return empty_events()

    order = np.lexsort((class_i, onset, file_i))
    file_i, class_i, onset, offset = file_i[order], class_i[order], onset[order], offset[order]
    names = np.asarray(list(filenames), dtype=object)
    label_arr = np.asarray(list(labels), dtype=object)
    return pd.DataFrame(
        {
            "filename": names[file_i],
            "onset": onset,
            "offset": offset,
            "event_label": label_arr[class_i],
        }
    )
