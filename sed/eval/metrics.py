"""Event-based F1 (sed_eval) and PSDS (psds_eval) with the DCASE 2020 task 4 settings.

The libraries compute every number; this module only converts predictions and
references into their input formats (docs/design.md, "Post-processing and
metrics"). Settings (docs/reference.md, "Post-processing and metrics"):

* ``sed_eval.sound_event.EventBasedMetrics(t_collar=0.200,
  percentage_of_length=0.2, empty_system_output_handling='zero_score')``,
  fed file by file; macro F1 = sed_eval's class-wise average F-measure.
* ``psds_eval.PSDSEval(dtc 0.5, gtc 0.5, cttc 0.3)``, 50 operating points at
  thresholds 0.01, 0.03, ..., 0.99, ``max_efpr=100``; PSDS variants
  ``(alpha_ct, alpha_st)`` = (0, 0) -> ``psds``, (1, 0) -> ``psds_ct``,
  (0, 1) -> ``psds_macro``.

Decisions written down here:

* References are cleaned by :func:`merge_overlaps`: rows without a label
  (DESED writes clips without events that way) are dropped from the events, the
  file still counts because evaluation runs over the ``filenames`` given;
  same-class events of one file that overlap or touch become one event (the
  shipped DESED validation.tsv has 12 such pairs, which psds_eval rejects).
  :func:`psds_scores` always merges; :func:`evaluate_predictions` merges once and
  scores both metrics against the same merged reference; :func:`event_f1` scores
  the reference it is given (sed_eval accepts overlaps), so the baseline's exact
  F1 is available from the raw reference.
* A class with no reference event has F1 = NaN in ``per_class_f1`` (sed_eval:
  recall 0/0); the macro average skips it (sed_eval's ``nanmean``).
* PSDS is computed over the classes present in the reference, as the 2020
  baseline does (psds_eval infers them from the ground truth; passing a class
  with no ground truth crashes psds_eval 0.5.3). Detections of other classes are
  dropped before scoring (psds_eval would ignore them anyway). With no reference
  event at all, the PSDS values are NaN.
* psds_eval 0.5.3 warns on every call under numpy 2.3 / pandas 2.3
  (FutureWarning, DeprecationWarning, RuntimeWarning for 0/0 rates) and when two
  thresholds give the same detections ("A similar operating point exists",
  the duplicate is skipped). These are filtered around the library calls only.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sed.constants import FRAME_STEP_S
from sed.eval.events import MetricsError, clean_events, merge_overlaps, quiet_metric_library
from sed.eval.postprocess import EVENT_COLUMNS, _durations_array, decode_events
from sed.eval.threshold_free import METRICS, threshold_free_metrics

#: sed_eval settings of the 2020 baseline.
T_COLLAR: float = 0.200
PERCENTAGE_OF_LENGTH: float = 0.2
#: psds_eval settings of the 2020 baseline.
DTC_THRESHOLD: float = 0.5
GTC_THRESHOLD: float = 0.5
CTTC_THRESHOLD: float = 0.3
MAX_EFPR: float = 100.0
#: (alpha_ct, alpha_st) of the three reported PSDS variants.
PSDS_VARIANTS: dict[str, tuple[float, float]] = {
    "psds": (0.0, 0.0),
    "psds_ct": (1.0, 0.0),
    "psds_macro": (0.0, 1.0),
}
#: Packages whose versions are recorded with every result.
VERSIONED_PACKAGES: tuple[str, ...] = (
    "sed_eval",
    "dcase_util",
    "psds_eval",
    "sed_scores_eval",
    "numpy",
    "pandas",
    "scipy",
    "torch",
    "torchaudio",
)


def _check_filenames(filenames: Sequence[str]) -> list[str]:
    names = [str(f) for f in filenames]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise MetricsError(f"filenames lists {dup!r} more than once; evaluate each file once.")
    return names


def _check_known(events: pd.DataFrame, name: str, names: set[str], labels: set[str]) -> None:
    unknown_files = sorted(set(events["filename"]) - names)
    if unknown_files:
        raise MetricsError(
            f"{name} has events for {len(unknown_files)} file(s) not in filenames, e.g. "
            f"{unknown_files[0]!r}; pass the same file list as the predictions, or filter the table "
            "with df[df.filename.isin(filenames)]."
        )
    unknown_labels = sorted(set(events["event_label"]) - labels)
    if unknown_labels:
        raise MetricsError(
            f"{name} has labels {unknown_labels} that are not in labels {sorted(labels)}; "
            "pass the dataset's label set as labels."
        )


# ----------------------------------------------------------------------------- event F1


def _records_by_file(events: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Group events by file once (MetaDataContainer.filter per file is quadratic)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for filename, onset, offset, label in events[list(EVENT_COLUMNS)].itertuples(index=False, name=None):
        grouped.setdefault(filename, []).append(
            {"filename": filename, "onset": float(onset), "offset": float(offset), "event_label": label}
        )
    return grouped


def event_f1(
    reference_df: pd.DataFrame,
    estimated_df: pd.DataFrame,
    filenames: Sequence[str],
    labels: Sequence[str],
) -> dict[str, Any]:
    """Event-based F1 with sed_eval and the 2020 task 4 settings.

    Every file in ``filenames`` is evaluated, with or without reference or
    estimated events. Returns ``macro_f1`` (class-wise average F-measure, the
    baseline's reported number), ``micro_f1`` (overall F-measure) and
    ``per_class_f1`` ``{label: f1}`` (NaN for a class with no reference event).
    """
    names = _check_filenames(filenames)
    label_list = [str(label) for label in labels]
    reference = clean_events(reference_df, "reference_df")
    estimated = clean_events(estimated_df, "estimated_df")
    _check_known(reference, "reference_df", set(names), set(label_list))
    _check_known(estimated, "estimated_df", set(names), set(label_list))

    with quiet_metric_library():
        import sed_eval

        metrics = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=label_list,
            t_collar=T_COLLAR,
            percentage_of_length=PERCENTAGE_OF_LENGTH,
            empty_system_output_handling="zero_score",
        )
        reference_by_file = _records_by_file(reference)
        estimated_by_file = _records_by_file(estimated)
        for filename in names:
            metrics.evaluate(
                reference_event_list=reference_by_file.get(filename, []),
                estimated_event_list=estimated_by_file.get(filename, []),
            )
        macro = metrics.results_class_wise_average_metrics()["f_measure"]["f_measure"]
        micro = metrics.results_overall_metrics()["f_measure"]["f_measure"]
        per_class = {label: float(metrics.class_wise_f_measure(label)["f_measure"]) for label in label_list}
    return {"macro_f1": float(macro), "micro_f1": float(micro), "per_class_f1": per_class}


# ----------------------------------------------------------------------------- PSDS


def _check_variants(variants: Sequence[str] | None) -> tuple[str, ...]:
    if variants is None:
        return tuple(PSDS_VARIANTS)
    if isinstance(variants, str):
        variants = [variants]
    unknown = [v for v in variants if v not in PSDS_VARIANTS]
    if unknown or not variants:
        raise MetricsError(
            f"PSDS variants {list(variants)!r} are not a non-empty subset of {list(PSDS_VARIANTS)}; "
            "pick from those names (psds = alpha_ct 0 / alpha_st 0, psds_ct = 1 / 0, psds_macro = 0 / 1)."
        )
    return tuple(variants)


def psds_thresholds(n_thresholds: int = 50) -> np.ndarray:
    """Evenly spaced operating thresholds ``(2k + 1) / (2n)``: 0.01, 0.03, ..., 0.99 for 50."""
    if isinstance(n_thresholds, bool) or int(n_thresholds) != n_thresholds or n_thresholds < 1:
        raise MetricsError(f"n_thresholds={n_thresholds!r} must be a positive integer; the 2020 baseline uses 50.")
    n = int(n_thresholds)
    return (2 * np.arange(n) + 1) / (2 * n)


def psds_scores(
    strong_probs: np.ndarray,
    filenames: Sequence[str],
    labels: Sequence[str],
    reference_df: pd.DataFrame,
    durations: Sequence[float] | np.ndarray | None,
    median_window: int = 7,
    n_thresholds: int = 50,
    frame_step: float = FRAME_STEP_S,
    variants: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """PSDS (psds_eval, 2020 settings) over ``n_thresholds`` operating points.

    The reference is merged with :func:`merge_overlaps` first. ``durations``
    (seconds per file, None = 10 s each) form the psds_eval metadata, so files
    without events count towards the false-positive rate. Returns ``psds``,
    ``psds_ct`` and ``psds_macro`` (NaN when the reference has no event).
    ``variants`` (default: all three) limits which are computed, the others are
    None: each ``PSDSEval.psds`` call costs about 0.3 s for 10 classes
    (benchmarks/README.md), so a per-epoch validation may ask for one only.
    """
    wanted = _check_variants(variants)
    names = _check_filenames(filenames)
    label_list = [str(label) for label in labels]
    thresholds = psds_thresholds(n_thresholds)
    dur = _durations_array(durations, len(names))
    reference, _ = merge_overlaps(reference_df)
    _check_known(reference, "reference_df", set(names), set(label_list))
    if reference.empty:
        return {key: (float("nan") if key in wanted else None) for key in PSDS_VARIANTS}
    scored_labels = set(reference["event_label"])
    metadata = pd.DataFrame({"filename": names, "duration": dur})

    with quiet_metric_library():
        from psds_eval import PSDSEval

        evaluator = PSDSEval(
            dtc_threshold=DTC_THRESHOLD,
            gtc_threshold=GTC_THRESHOLD,
            cttc_threshold=CTTC_THRESHOLD,
            ground_truth=reference,
            metadata=metadata,
        )
        for threshold in thresholds:
            detections = decode_events(
                strong_probs,
                names,
                label_list,
                threshold=float(threshold),
                median_window=median_window,
                frame_step=frame_step,
                durations=dur,
            )
            detections = detections[detections["event_label"].isin(scored_labels)]
            evaluator.add_operating_point(detections.reset_index(drop=True), info={"threshold": float(threshold)})
        return {
            key: (
                float(evaluator.psds(alpha_ct=alpha_ct, alpha_st=alpha_st, max_efpr=MAX_EFPR).value)
                if key in wanted
                else None
            )
            for key, (alpha_ct, alpha_st) in PSDS_VARIANTS.items()
        }


# ----------------------------------------------------------------------------- together


def metric_versions(kernel_path: bool = True) -> dict[str, str]:
    """Installed versions of the metric and numeric packages ("not installed" if absent), the
    Python version, and the CPU kernel path torch runs here (`torch_cpu_capability`: AVX512,
    AVX2, DEFAULT, ...; the same seed gives identical numbers only on the same path).

    `kernel_path=False` leaves the kernel path out, for a process that runs no torch code (the
    per-class post-processing tuning, sed.eval.pp_tuning): finding it imports torch, 2 s or
    more of such a process's life for an entry that says nothing about its numbers.
    """
    versions: dict[str, str] = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["python"] = platform.python_version()
    if kernel_path:
        import torch  # here, not at the top: the metrics themselves need no torch

        versions["torch_cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    return versions


def evaluate_predictions(
    strong_probs: np.ndarray,
    filenames: Sequence[str],
    labels: Sequence[str],
    reference_df: pd.DataFrame,
    durations: Sequence[float] | np.ndarray | None,
    threshold: float = 0.5,
    median_window: int = 7,
    compute_psds: bool = True,
    n_thresholds: int = 50,
    psds_variants: Sequence[str] | None = None,
    threshold_free: bool | Sequence[str] = False,
) -> dict[str, Any]:
    """Event F1 at ``threshold`` and (optionally) PSDS, against the merged reference.

    Returns ``macro_f1``, ``micro_f1``, ``per_class_f1``, ``psds``, ``psds_ct``,
    ``psds_macro`` (None when ``compute_psds`` is False or the variant is not in
    ``psds_variants``, default all three), ``merged_overlaps``
    (reference events absorbed by :func:`merge_overlaps`), ``n_thresholds``
    (None when PSDS is not computed) and ``metric_versions``. With
    ``threshold_free`` also ``psds1``, ``psds2`` and ``intersection_f1``
    (sed_scores_eval, :mod:`sed.eval.threshold_free`; a sequence of those names
    computes only them; None otherwise).
    """
    names = _check_filenames(filenames)
    dur = _durations_array(durations, len(names))
    reference, n_merged = merge_overlaps(reference_df)
    estimated = decode_events(
        strong_probs, names, labels, threshold=threshold, median_window=median_window, durations=dur
    )
    result: dict[str, Any] = dict(event_f1(reference, estimated, names, labels))
    if compute_psds:
        result.update(
            psds_scores(
                strong_probs, names, labels, reference, dur, median_window, n_thresholds, variants=psds_variants
            )
        )
        result["n_thresholds"] = int(n_thresholds)
    else:
        result.update({key: None for key in PSDS_VARIANTS})
        result["n_thresholds"] = None
    result.update({"psds1": None, "psds2": None, "intersection_f1": None})
    if threshold_free:
        which = METRICS if threshold_free is True else tuple(threshold_free)
        result.update(
            threshold_free_metrics(strong_probs, names, labels, reference, dur, median_window, threshold, which=which)
        )
    result["merged_overlaps"] = n_merged
    result["metric_versions"] = metric_versions()
    return result
