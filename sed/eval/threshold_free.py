"""Threshold-free PSDS and intersection-based F1 with sed_scores_eval (the DCASE 2021+ convention).

One job: turn frame probabilities into the score tables sed_scores_eval reads
(one ``onset offset <class...>`` table per clip, keyed by the clip's file name
without its extension) and call the library; no metric is computed here.

Settings (DCASE 2021-2023 task 4; docs/reference.md, "Post-processing and metrics"):

* PSDS1: dtc = gtc = 0.7, no cross-trigger criterion, alpha_ct 0, alpha_st 1, max_efpr 100;
* PSDS2: dtc = gtc = 0.1, cttc 0.3, alpha_ct 0.5, alpha_st 1, max_efpr 100;
* intersection-based F1: dtc = gtc = 0.5 at the run's decision threshold
  (``TrainConfig.threshold``), macro average over classes.

Decisions written down here:

* The scores are the median-filtered frame probabilities (window
  ``median_window``, scipy's ``reflect`` border, the filter of
  sed.eval.postprocess). A median filter commutes with a threshold (both are
  monotone order statistics), so thresholding these scores at ``t`` gives
  exactly the events sed.eval.postprocess decodes at ``t``: the threshold-free
  PSDS is the limit of psds_eval's PSDS over more and more operating points
  on the same detections. psds_eval at 50 thresholds reads the same or lower
  (its ROC has only 50 of the points; ``tests/test_threshold_free.py``).
* Frame ``i`` spans ``[i * step, (i + 1) * step)``; frames starting at or
  after the clip's duration are left out and the last offset is the
  duration, exactly as sed.eval.postprocess clips events.
* As for psds_eval (sed.eval.metrics), only the classes with a reference event are
  scored (a class without any makes sed_scores_eval's rates 0/0), and same-class
  overlapping or touching reference events are merged first (sed_scores_eval
  refuses connected events). With no reference event at all every value is NaN;
  with a single class that has reference events PSDS2 is NaN (its cross-trigger
  term averages over the other classes).
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from sed.constants import FRAME_STEP_S
from sed.eval.events import MetricsError, merge_overlaps, quiet_metric_library

__all__ = [
    "PSDS1",
    "PSDS2",
    "PSDS_2020",
    "INTERSECTION_F1",
    "psds_of_tables",
    "audio_id",
    "score_tables",
    "threshold_free_metrics",
    "metrics_from_tables",
    "sed_scores_eval_version",
    "METRICS",
]

#: sed_scores_eval.intersection_based.psds settings (DCASE 2021+ task 4).
PSDS1: dict[str, Any] = {
    "dtc_threshold": 0.7,
    "gtc_threshold": 0.7,
    "cttc_threshold": None,
    "alpha_ct": 0.0,
    "alpha_st": 1.0,
    "max_efpr": 100.0,
}
PSDS2: dict[str, Any] = {
    "dtc_threshold": 0.1,
    "gtc_threshold": 0.1,
    "cttc_threshold": 0.3,
    "alpha_ct": 0.5,
    "alpha_st": 1.0,
    "max_efpr": 100.0,
}
#: The 2020 psds_eval settings of sed.eval.metrics' ``psds`` (alpha_ct = alpha_st = 0; without a
#: cross-trigger weight sed_scores_eval takes no cttc), for comparing the two libraries.
PSDS_2020: dict[str, Any] = {
    "dtc_threshold": 0.5,
    "gtc_threshold": 0.5,
    "cttc_threshold": None,
    "alpha_ct": 0.0,
    "alpha_st": 0.0,
    "max_efpr": 100.0,
}
#: sed_scores_eval.intersection_based.fscore settings.
INTERSECTION_F1: dict[str, float] = {"dtc_threshold": 0.5, "gtc_threshold": 0.5}


def sed_scores_eval_version() -> str:
    try:
        return importlib.metadata.version("sed_scores_eval")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def audio_id(filename: str) -> str:
    """The key sed_scores_eval uses for a clip: its file name without the extension."""
    return str(filename).rsplit(".", maxsplit=1)[0]


def score_tables(
    strong_probs: np.ndarray,
    filenames: Sequence[str],
    labels: Sequence[str],
    durations: Sequence[float] | np.ndarray,
    median_window: int = 1,
    frame_step: float = FRAME_STEP_S,
) -> dict[str, pd.DataFrame]:
    """Per clip, the ``onset offset <label...>`` score table sed_scores_eval reads.

    ``median_window`` 1 gives the raw probabilities, > 1 the median-filtered
    ones (module docstring). Keys are :func:`audio_id` of each file name.
    """
    probs = np.asarray(strong_probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] != len(filenames) or probs.shape[2] != len(labels):
        raise MetricsError(
            f"strong_probs has shape {probs.shape}, expected [{len(filenames)} files, frames, "
            f"{len(labels)} classes]; pass one row per file name and one column per label."
        )
    if len(durations) != len(filenames):
        raise MetricsError(f"{len(durations)} durations for {len(filenames)} files; pass one per file.")
    if int(median_window) > 1:
        probs = median_filter(probs, size=(1, int(median_window), 1))
    tables: dict[str, pd.DataFrame] = {}
    columns = ["onset", "offset", *[str(label) for label in labels]]
    for name, clip, duration in zip(filenames, probs, durations):
        key = audio_id(name)
        if key in tables:
            raise MetricsError(f"two files share the clip id {key!r} (file names differ only by extension).")
        # both from the same products, so each offset equals the next frame's onset exactly
        edges = np.arange(clip.shape[0] + 1) * float(frame_step)
        keep = edges[:-1] < float(duration)
        onsets = edges[:-1][keep]
        offsets = np.minimum(edges[1:][keep], float(duration))
        tables[key] = pd.DataFrame(
            np.concatenate([onsets[:, None], offsets[:, None], clip[keep]], axis=1), columns=columns
        )
    return tables


def _ground_truth(reference: pd.DataFrame, keys: Sequence[str]) -> dict[str, list[tuple[float, float, str]]]:
    truth: dict[str, list[tuple[float, float, str]]] = {key: [] for key in keys}
    for filename, onset, offset, label in reference[["filename", "onset", "offset", "event_label"]].itertuples(
        index=False, name=None
    ):
        truth[audio_id(filename)].append((float(onset), float(offset), str(label)))
    return truth


def _prepared(
    tables: Mapping[str, pd.DataFrame], reference_df: pd.DataFrame, durations: Mapping[str, float]
) -> tuple[dict[str, pd.DataFrame], dict[str, list[tuple[float, float, str]]], dict[str, float]] | None:
    """(score tables of the reference's classes, ground truth, durations) by clip id; None: no event."""
    keys = list(tables)
    missing = [k for k in keys if k not in durations]
    if missing:
        raise MetricsError(f"no duration for clip {missing[0]!r} ({len(missing)} clips); add it to the durations.")
    reference, _ = merge_overlaps(reference_df)
    unknown = sorted({audio_id(f) for f in reference["filename"]} - set(keys))
    if unknown:
        raise MetricsError(
            f"the reference has events for clip {unknown[0]!r}, which has no scores ({len(unknown)} clips); "
            "score every clip of the reference."
        )
    if reference.empty:
        return None
    classes = sorted(set(reference["event_label"]))
    scored = {k: t[["onset", "offset", *classes]] for k, t in tables.items()}
    return scored, _ground_truth(reference, keys), {k: float(durations[k]) for k in keys}


def psds_of_tables(
    tables: Mapping[str, pd.DataFrame],
    reference_df: pd.DataFrame,
    durations: Mapping[str, float],
    settings: Mapping[str, Any],
) -> float:
    """sed_scores_eval's threshold-free PSDS with ``settings`` (e.g. :data:`PSDS1`); NaN without events."""
    prepared = _prepared(tables, reference_df, durations)
    if prepared is None:
        return float("nan")
    with quiet_metric_library():
        from sed_scores_eval import intersection_based

        return float(intersection_based.psds(*prepared, **settings)[0])


#: The values :func:`metrics_from_tables` can compute.
METRICS: tuple[str, ...] = ("psds1", "psds2", "intersection_f1")


def metrics_from_tables(
    tables: Mapping[str, pd.DataFrame],
    reference_df: pd.DataFrame,
    durations: Mapping[str, float],
    threshold: float = 0.5,
    which: Sequence[str] = METRICS,
) -> dict[str, float]:
    """``psds1``, ``psds2`` and ``intersection_f1`` (those in ``which``) of score tables keyed by clip id.

    ``reference_df``: events with ``filename onset offset event_label`` (file
    names with their extension, as in the DESED TSVs); ``durations`` keyed by
    clip id. Every clip of ``tables`` must have a duration.
    """
    unknown = [m for m in which if m not in METRICS]
    if unknown:
        raise MetricsError(f"unknown threshold-free metric(s) {unknown}; choose from {list(METRICS)}.")
    prepared = _prepared(tables, reference_df, durations)
    if prepared is None:
        return {m: float("nan") for m in which}
    scored, truth, audio_durations = prepared
    out: dict[str, float] = {}
    with quiet_metric_library():
        from sed_scores_eval import intersection_based

        if "psds1" in which:
            out["psds1"] = float(intersection_based.psds(scored, truth, audio_durations, **PSDS1)[0])
        if "psds2" in which:
            # PSDS2's cross-trigger rate averages over the *other* classes: undefined with one class
            # (sed_scores_eval 0.0.4 then fails with a TypeError).
            n_classes = len(next(iter(scored.values())).columns) - 2
            out["psds2"] = (
                float(intersection_based.psds(scored, truth, audio_durations, **PSDS2)[0])
                if n_classes > 1
                else math.nan
            )
        if "intersection_f1" in which:
            fscores = intersection_based.fscore(scored, truth, float(threshold), **INTERSECTION_F1)[0]
            out["intersection_f1"] = float(fscores["macro_average"])
    return out


def threshold_free_metrics(
    strong_probs: np.ndarray,
    filenames: Sequence[str],
    labels: Sequence[str],
    reference_df: pd.DataFrame,
    durations: Sequence[float] | np.ndarray,
    median_window: int = 7,
    threshold: float = 0.5,
    frame_step: float = FRAME_STEP_S,
    which: Sequence[str] = METRICS,
) -> dict[str, float]:
    """PSDS1, PSDS2 and intersection F1 (those in ``which``) of frame probabilities, on the
    median-filtered scores."""
    tables = score_tables(strong_probs, filenames, labels, durations, median_window, frame_step)
    by_id = {audio_id(f): float(d) for f, d in zip(filenames, durations)}
    return metrics_from_tables(tables, reference_df, by_id, threshold, which)
