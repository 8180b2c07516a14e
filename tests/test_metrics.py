"""Metrics: reference merging, sed_eval event F1 and psds_eval PSDS on hand-made cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from sed.eval.metrics import (
    MetricsError,
    evaluate_predictions,
    event_f1,
    merge_overlaps,
    metric_versions,
    psds_scores,
    psds_thresholds,
)

STEP = 0.06375
COLUMNS = ["filename", "onset", "offset", "event_label"]


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


# ----------------------------------------------------------------------------- merge_overlaps


def test_merge_overlaps_counts_and_results() -> None:
    reference = _frame(
        [
            ("a.wav", 1.0, 3.0, "Dog"),
            ("a.wav", 2.0, 4.0, "Dog"),  # overlaps the first
            ("a.wav", 4.0, 5.0, "Dog"),  # touches the merged one -> Dog 1-5 (2 absorbed)
            ("a.wav", 2.0, 3.0, "Cat"),  # other class: untouched
            ("a.wav", 7.0, 8.0, "Dog"),  # gap: separate event
            ("b.wav", 1.0, 3.0, "Dog"),  # other file: untouched
            ("b.wav", 0.0, 2.0, "Speech"),
            ("b.wav", 0.5, 1.0, "Speech"),  # contained -> Speech 0-2 (1 absorbed)
            ("c.wav", np.nan, np.nan, np.nan),  # clip without events
            ("d.wav", np.nan, np.nan, ""),
            ("e.wav", 1.0, 2.0, "Cat"),
            ("e.wav", 1.0, 2.0, "Cat"),  # exact duplicate (1 absorbed)
        ]
    )
    merged, n_merged = merge_overlaps(reference)
    assert n_merged == 4
    expected = _frame(
        [
            ("a.wav", 1.0, 5.0, "Dog"),
            ("a.wav", 2.0, 3.0, "Cat"),
            ("a.wav", 7.0, 8.0, "Dog"),
            ("b.wav", 0.0, 2.0, "Speech"),
            ("b.wav", 1.0, 3.0, "Dog"),
            ("e.wav", 1.0, 2.0, "Cat"),
        ]
    )
    got = merged.sort_values(COLUMNS).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.sort_values(COLUMNS).reset_index(drop=True), check_dtype=False)
    # Idempotent.
    again, n_again = merge_overlaps(merged)
    assert n_again == 0 and len(again) == len(merged)


def test_merge_overlaps_nothing_to_merge_and_empty() -> None:
    ref = _frame([("a.wav", 0.0, 1.0, "Dog"), ("a.wav", 1.5, 2.0, "Dog")])
    merged, n = merge_overlaps(ref)
    assert n == 0 and len(merged) == 2
    merged, n = merge_overlaps(_frame([("a.wav", np.nan, np.nan, np.nan)]))
    assert n == 0 and merged.empty and list(merged.columns) == COLUMNS


def test_merge_overlaps_rejects_bad_tables() -> None:
    with pytest.raises(MetricsError, match="lacks columns"):
        merge_overlaps(pd.DataFrame({"filename": ["a"], "onset": [0.0]}))
    with pytest.raises(MetricsError, match="b.wav"):
        merge_overlaps(_frame([("b.wav", 3.0, 1.0, "Dog")]))


# ----------------------------------------------------------------------------- event F1

LABELS = ["Dog", "Cat", "Speech", "Blender"]
REFERENCE = _frame(
    [
        ("a.wav", 1.0, 3.0, "Dog"),  # length 2.0 -> offset tolerance max(0.2, 0.4) = 0.4
        ("a.wav", 5.0, 5.5, "Cat"),  # length 0.5 -> offset tolerance max(0.2, 0.1) = 0.2
        ("b.wav", 0.0, 1.0, "Dog"),  # length 1.0 -> offset tolerance 0.2
        ("b.wav", 2.0, 6.0, "Speech"),
        ("d.wav", np.nan, np.nan, np.nan),  # a clip without events
    ]
)
ESTIMATE = _frame(
    [
        ("a.wav", 1.15, 3.35, "Dog"),  # onset off by 0.15 <= 0.2, offset by 0.35 <= 0.4: TP
        ("a.wav", 5.1, 5.8, "Cat"),  # onset fine, offset off by 0.3 > 0.2: FP (+ FN Cat)
        ("b.wav", 0.3, 1.0, "Dog"),  # onset off by 0.3 > 0.2: FP (+ FN Dog b)
        ("c.wav", 4.0, 5.0, "Dog"),  # file without reference events: FP
    ]
)
FILES = ["a.wav", "b.wav", "c.wav", "d.wav"]
# Hand counts: Dog Nref 2, Nsys 3, TP 1 -> P 1/3, R 1/2, F = 2PR/(P+R) = 0.4
#              Cat Nref 1, Nsys 1, TP 0 -> F 0
#              Speech Nref 1, Nsys 0 -> zero_score: P 0, R 0, F 0
#              Blender: no reference -> F undefined (NaN), left out of the macro average
# macro = (0.4 + 0 + 0) / 3; micro: Nref 4, Nsys 4, TP 1 -> F 0.25
HAND_COUNTS = {"Dog": (1, 2, 1), "Cat": (0, 1, 1), "Speech": (0, 0, 1)}  # (TP, FP, FN)


def test_event_f1_hand_computed() -> None:
    result = event_f1(REFERENCE, ESTIMATE, FILES, LABELS)
    per_class = result["per_class_f1"]
    assert per_class["Dog"] == pytest.approx(0.4)
    assert per_class["Cat"] == 0.0  # fails the offset condition only
    assert per_class["Speech"] == 0.0  # no estimate at all: zero_score
    assert math.isnan(per_class["Blender"])
    assert result["macro_f1"] == pytest.approx(0.4 / 3)
    assert result["macro_f1"] == pytest.approx(np.nanmean(list(per_class.values())))
    assert result["micro_f1"] == pytest.approx(0.25)


def test_event_f1_hand_counts_agree_with_sed_eval_itself() -> None:
    with warnings.catch_warnings():  # dcase_util warns about pkg_resources on import
        warnings.simplefilter("ignore", UserWarning)
        import sed_eval  # noqa: PLC0415

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=LABELS,
        t_collar=0.200,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    ref = REFERENCE.dropna()
    for name in FILES:
        metrics.evaluate(
            ref[ref.filename == name].to_dict("records"),
            ESTIMATE[ESTIMATE.filename == name].to_dict("records"),
        )
    ours = event_f1(REFERENCE, ESTIMATE, FILES, LABELS)
    for label, (tp, fp, fn) in HAND_COUNTS.items():
        counts = metrics.class_wise[label]
        assert (counts["Ntp"], counts["Nfp"], counts["Nfn"]) == (tp, fp, fn), label
        assert ours["per_class_f1"][label] == pytest.approx(metrics.class_wise_f_measure(label)["f_measure"])
    average = metrics.results_class_wise_average_metrics()["f_measure"]["f_measure"]
    assert ours["macro_f1"] == pytest.approx(average)


def test_event_f1_offset_within_20_percent_of_long_event_is_a_hit() -> None:
    # Speech 2-6 (4 s): offset 6.7 is 0.7 s late, within 20 % of 4 s = 0.8 s -> TP.
    estimate = _frame([("b.wav", 2.1, 6.7, "Speech")])
    result = event_f1(REFERENCE, estimate, FILES, LABELS)
    assert result["per_class_f1"]["Speech"] == pytest.approx(1.0)
    # 0.9 s late -> miss.
    estimate = _frame([("b.wav", 2.1, 6.9, "Speech")])
    assert event_f1(REFERENCE, estimate, FILES, LABELS)["per_class_f1"]["Speech"] == 0.0


def test_event_f1_every_listed_file_counts_and_order_does_not_matter() -> None:
    shuffled = ESTIMATE.sample(frac=1.0, random_state=3)
    a = event_f1(REFERENCE, ESTIMATE, FILES, LABELS)
    b = event_f1(REFERENCE.iloc[::-1], shuffled, FILES[::-1], LABELS)
    assert a["macro_f1"] == pytest.approx(b["macro_f1"])
    # Reference events of a listed file with no estimate are misses: perfect estimate for a.wav only.
    only_a = event_f1(REFERENCE, REFERENCE[REFERENCE.filename == "a.wav"], FILES, ["Dog", "Cat", "Speech"])
    assert only_a["micro_f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # P 2/2, R 2/4


def test_event_f1_perfect_and_empty_estimates() -> None:
    perfect = event_f1(REFERENCE, REFERENCE, FILES, LABELS)
    assert perfect["macro_f1"] == pytest.approx(1.0) and perfect["micro_f1"] == pytest.approx(1.0)
    empty = event_f1(REFERENCE, _frame([]), FILES, LABELS)
    assert empty["macro_f1"] == 0.0 and empty["micro_f1"] == 0.0


def test_event_f1_rejects_unknown_files_and_labels() -> None:
    with pytest.raises(MetricsError, match="c.wav"):
        event_f1(REFERENCE, ESTIMATE, ["a.wav", "b.wav", "d.wav"], LABELS)
    with pytest.raises(MetricsError, match="Speech"):
        event_f1(REFERENCE, ESTIMATE, FILES, ["Dog", "Cat"])
    with pytest.raises(MetricsError, match="more than once"):
        event_f1(REFERENCE, ESTIMATE, FILES + ["a.wav"], LABELS)


# ----------------------------------------------------------------------------- PSDS

PSDS_LABELS = ["Dog", "Cat", "Speech"]
PSDS_FILES = ["p0.wav", "p1.wav", "p2.wav", "p3.wav", "p4.wav"]
# Frame-aligned events (frame k starts at k * 63.75 ms) so that a perfect frame
# prediction decodes to exactly the reference.
PSDS_EVENTS = [  # (file, first frame, end frame (exclusive), class)
    (0, 10, 40, 0),
    (0, 30, 60, 1),
    (1, 0, 157, 2),  # whole clip (offset clipped to 10 s)
    (2, 50, 70, 0),
    (2, 90, 130, 0),
    (3, 20, 100, 1),
    # p4.wav has no events
]


def _psds_case() -> tuple[np.ndarray, pd.DataFrame]:
    target = np.zeros((len(PSDS_FILES), 157, len(PSDS_LABELS)), dtype=np.float32)
    rows = []
    for f, start, stop, c in PSDS_EVENTS:
        target[f, start:stop, c] = 1.0
        rows.append((PSDS_FILES[f], start * STEP, min(stop * STEP, 10.0), PSDS_LABELS[c]))
    return target, _frame(rows)


def test_psds_thresholds_are_the_baselines() -> None:
    thresholds = psds_thresholds(50)
    assert thresholds[0] == pytest.approx(0.01) and thresholds[-1] == pytest.approx(0.99)
    assert np.diff(thresholds) == pytest.approx(np.full(49, 0.02))
    assert psds_thresholds(4) == pytest.approx([0.125, 0.375, 0.625, 0.875])


def test_psds_perfect_versus_random_predictions() -> None:
    target, reference = _psds_case()
    durations = [10.0] * len(PSDS_FILES)
    soft = 0.05 + 0.9 * target  # correct at every threshold in (0.05, 0.95]
    perfect = psds_scores(soft, PSDS_FILES, PSDS_LABELS, reference, durations, n_thresholds=50)
    assert perfect["psds"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["psds_ct"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["psds_macro"] == pytest.approx(1.0, abs=1e-6)

    rng = np.random.default_rng(0)
    random = rng.random(target.shape).astype(np.float32)
    noisy = psds_scores(random, PSDS_FILES, PSDS_LABELS, reference, durations, n_thresholds=10)
    assert 0.0 <= noisy["psds"] < 0.3
    assert perfect["psds"] - noisy["psds"] > 0.7
    assert noisy["psds_ct"] <= noisy["psds"] + 1e-9  # cross-triggers only add to the FP rate


def test_psds_no_detections_and_silent_classes() -> None:
    target, reference = _psds_case()
    zero = psds_scores(np.zeros_like(target), PSDS_FILES, PSDS_LABELS, reference, None, n_thresholds=5)
    assert zero == {"psds": 0.0, "psds_ct": 0.0, "psds_macro": 0.0}
    # Speech never predicted: the other classes are still perfect, Speech's TPR is 0.
    partial = target.copy()
    partial[:, :, 2] = 0.0
    result = psds_scores(partial, PSDS_FILES, PSDS_LABELS, reference, None, n_thresholds=5)
    assert result["psds"] == pytest.approx(2 / 3, abs=1e-6)  # mean TPR over 3 classes
    assert result["psds_macro"] < result["psds"]  # penalised by the spread across classes


def test_psds_label_absent_from_reference_is_not_scored() -> None:
    target, reference = _psds_case()
    extra = np.concatenate([target, np.ones_like(target[:, :, :1])], axis=2)  # "Blender" always on
    result = psds_scores(extra, PSDS_FILES, PSDS_LABELS + ["Blender"], reference, None, n_thresholds=5)
    assert result["psds"] == pytest.approx(1.0, abs=1e-6)


def test_psds_variants_subset() -> None:
    target, reference = _psds_case()
    partial = target.copy()
    partial[:, :, 2] = 0.0
    full = psds_scores(partial, PSDS_FILES, PSDS_LABELS, reference, None, n_thresholds=3)
    only = psds_scores(partial, PSDS_FILES, PSDS_LABELS, reference, None, n_thresholds=3, variants=["psds_macro"])
    assert only["psds"] is None and only["psds_ct"] is None
    assert only["psds_macro"] == pytest.approx(full["psds_macro"])
    with pytest.raises(MetricsError, match="psds_xx"):
        psds_scores(partial, PSDS_FILES, PSDS_LABELS, reference, None, n_thresholds=3, variants=["psds_xx"])


def test_psds_with_desed_like_overlapping_reference() -> None:
    from psds_eval import PSDSEval, PSDSEvalError  # noqa: PLC0415

    target, reference = _psds_case()
    overlapping = pd.concat(
        [reference, _frame([("p0.wav", 20 * STEP, 35 * STEP, "Dog"), ("p4.wav", np.nan, np.nan, np.nan)])],
        ignore_index=True,
    )
    metadata = pd.DataFrame({"filename": PSDS_FILES, "duration": [10.0] * 5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PSDSEvalError, match="same class"):
            PSDSEval(0.5, 0.5, 0.3, ground_truth=overlapping.dropna(), metadata=metadata)
    result = psds_scores(target, PSDS_FILES, PSDS_LABELS, overlapping, None, n_thresholds=5)
    assert result["psds"] == pytest.approx(1.0, abs=1e-6)  # the added Dog lies inside Dog 10-40


def test_psds_reference_without_events_is_nan() -> None:
    target, _ = _psds_case()
    empty_reference = _frame([(name, np.nan, np.nan, np.nan) for name in PSDS_FILES])
    result = psds_scores(target, PSDS_FILES, PSDS_LABELS, empty_reference, None, n_thresholds=3)
    assert all(math.isnan(v) for v in result.values())


# ----------------------------------------------------------------------------- together


def test_evaluate_predictions_keys_versions_and_merge_count() -> None:
    target, reference = _psds_case()
    overlapping = pd.concat([reference, _frame([("p3.wav", 90 * STEP, 110 * STEP, "Cat")])], ignore_index=True)
    result = evaluate_predictions(target, PSDS_FILES, PSDS_LABELS, overlapping, [10.0] * 5, n_thresholds=5)
    assert result["merged_overlaps"] == 1
    # The merged reference Cat on p3 spans frames 20..110 (5.74 s); the prediction (frames
    # 20..100) hits the onset and ends 0.6375 s early, within 20 % of 5.74 s -> a TP for F1,
    # and covers 89 % of it (>= gtc 0.5) with no spill (dtc) -> a TP for PSDS too.
    assert result["macro_f1"] == pytest.approx(1.0)
    assert result["psds"] == pytest.approx(1.0, abs=1e-6) and result["n_thresholds"] == 5
    assert set(result) >= {
        "macro_f1",
        "micro_f1",
        "per_class_f1",
        "psds",
        "psds_ct",
        "psds_macro",
        "merged_overlaps",
        "n_thresholds",
        "metric_versions",
    }
    versions = result["metric_versions"]
    assert versions == metric_versions()
    assert versions["sed_eval"] == "0.2.1" and versions["psds_eval"] == "0.5.3"
    assert set(versions) == {
        "sed_eval",
        "dcase_util",
        "psds_eval",
        "sed_scores_eval",
        "numpy",
        "pandas",
        "scipy",
        "torch",
        "torchaudio",
    }

    quick = evaluate_predictions(target, PSDS_FILES, PSDS_LABELS, reference, None, compute_psds=False)
    assert quick["psds"] is None and quick["psds_ct"] is None and quick["psds_macro"] is None
    assert quick["n_thresholds"] is None and quick["merged_overlaps"] == 0
    assert quick["macro_f1"] == pytest.approx(1.0) and quick["micro_f1"] == pytest.approx(1.0)
