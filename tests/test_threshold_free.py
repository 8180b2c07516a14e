"""sed.eval.threshold_free (sed_scores_eval), sed.eval.outputs (DCASE files, strict JSON) and sed.score."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import median_filter

from sed.constants import FRAME_STEP_S
from sed.eval.metrics import evaluate_predictions, metric_versions, psds_scores
from sed.eval.outputs import write_set_outputs
from sed.eval.threshold_free import PSDS_2020, audio_id, psds_of_tables, score_tables, threshold_free_metrics
from sed.io import json_ready, write_json
from sed.score import main as score_main
from sed.score import score_files

LABELS = ["Cat", "Dog", "Speech"]
STEP = FRAME_STEP_S


def _random_system(n_clips: int = 4, seed: int = 1, noise: float = 0.75) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """Noisy frame probabilities around random reference events (hard enough for PSDS < 1)."""
    rng = np.random.default_rng(seed)
    names = [f"clip{i}.wav" for i in range(n_clips)]
    probs = rng.uniform(0.0, noise, (n_clips, 157, len(LABELS)))
    rows = []
    for i in range(n_clips):
        for c, label in enumerate(LABELS):
            onset = rng.uniform(0, 7.5)
            offset = onset + rng.uniform(0.4, 2.0)
            rows.append((names[i], onset, offset, label))
            first = int(onset / STEP) + int(rng.integers(-3, 3))
            probs[i, max(first, 0) : int(offset / STEP) + int(rng.integers(-3, 3)), c] += rng.uniform(0.05, 0.5)
    return np.clip(probs, 0.0, 0.999), names, pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def test_threshold_free_psds_is_the_limit_of_psds_eval_on_the_same_scores():
    probs, names, reference = _random_system()
    durations = [10.0] * len(names)
    by_id = {audio_id(n): 10.0 for n in names}
    # Scores on the even hundredths 0.02 .. 0.98: psds_eval's 50 thresholds 0.01, 0.03, .., 0.99
    # separate every pair of score values, so both libraries see every operating point and the
    # 2020 PSDS (dtc = gtc = 0.5, alpha_ct = alpha_st = 0) must agree exactly.
    quantized = np.clip(np.round(probs * 50) / 50, 0.02, 0.98)
    exact = psds_of_tables(score_tables(quantized, names, LABELS, durations, 7), reference, by_id, PSDS_2020)
    sampled = psds_scores(
        quantized, names, LABELS, reference, durations, median_window=7, n_thresholds=50, variants=("psds",)
    )
    assert 0.1 < exact < 0.9
    assert sampled["psds"] == pytest.approx(exact, abs=1e-9)
    # Continuous scores: 10 operating points are a subset of the ROC of all score values, so
    # psds_eval reads lower (here 0.083 against 0.25), never higher.
    exact = psds_of_tables(score_tables(probs, names, LABELS, durations, 7), reference, by_id, PSDS_2020)
    ten = psds_scores(probs, names, LABELS, reference, durations, median_window=7, n_thresholds=10, variants=("psds",))[
        "psds"
    ]
    assert ten < exact


def _clean_system() -> tuple[np.ndarray, list[str], pd.DataFrame, list[float]]:
    """Two clips: Cat detected exactly (frames 16-47 = 1.02-3.06 s), Dog's detection misses."""
    names = ["a.wav", "b.wav"]
    probs = np.full((2, 157, 2), 0.1)
    probs[0, 16:48, 0] = 0.9  # Cat on a.wav, exactly its reference event
    probs[1, 100:120, 1] = 0.9  # Dog on b.wav at 6.375-7.65 s, reference at 1.02-3.06 s
    reference = pd.DataFrame(
        [("a.wav", 16 * STEP, 48 * STEP, "Cat"), ("b.wav", 16 * STEP, 48 * STEP, "Dog")],
        columns=["filename", "onset", "offset", "event_label"],
    )
    return probs, names, reference, [10.0, 7.0]


def test_hand_computed_psds1_and_intersection_f1():
    probs, names, reference, durations = _clean_system()
    scores = threshold_free_metrics(probs, names, ["Cat", "Dog"], reference, durations, median_window=1)
    # Cat: TP with no FP at any threshold in (0.1, 0.9] -> F1 1. Dog: its only detection misses
    # (no intersection) -> F1 0. Macro 0.5.
    assert scores["intersection_f1"] == pytest.approx(0.5)
    # PSDS1 with alpha_st = 1: per-class TPR curves Cat 1, Dog 0 (its TP needs the threshold at
    # 0.1, where everything is active and the FP rate is far past 100/h) -> mean 0.5 - std 0.5 = 0.
    assert scores["psds1"] == pytest.approx(0.0)
    only_cat = reference[reference["event_label"] == "Cat"]
    scores = threshold_free_metrics(probs, names, ["Cat", "Dog"], only_cat, durations, median_window=1)
    assert scores["psds1"] == pytest.approx(1.0) and scores["intersection_f1"] == pytest.approx(1.0)
    assert math.isnan(scores["psds2"])  # cross-triggers need a second class with reference events


def test_score_tables_follow_the_frame_grid_and_each_clip_duration():
    probs, names, _, durations = _clean_system()
    tables = score_tables(probs, names, ["Cat", "Dog"], durations, median_window=1)
    assert list(tables) == ["a", "b"]
    a, b = tables["a"], tables["b"]
    assert list(a.columns) == ["onset", "offset", "Cat", "Dog"]
    assert len(a) == 157 and a["offset"].iloc[-1] == 10.0  # 157 x 63.75 ms = 10.009 s, cut at 10 s
    # 7 s clip: frames starting before 7 s are 0..109 (109 x 63.75 ms = 6.949 s), last offset 7 s.
    assert len(b) == 110 and b["offset"].iloc[-1] == 7.0
    assert np.array_equal(a["offset"].to_numpy()[:-1], a["onset"].to_numpy()[1:])


def test_outputs_read_back_give_the_same_numbers(tmp_path, capsys):
    probs, names, reference = _random_system(noise=0.55)
    durations = [10.0, 10.0, 8.5, 10.0]
    direct = evaluate_predictions(
        probs, names, LABELS, reference, durations, threshold=0.5, median_window=7, threshold_free=True
    )
    folder = write_set_outputs(tmp_path / "set", probs, names, LABELS, durations, 0.5, 7, reference)
    assert sorted(p.name for p in (folder / "scores" / "filtered").iterdir()) == [f"clip{i}.tsv" for i in range(4)]
    header = (folder / "detections.tsv").read_text().splitlines()[0]
    assert header == "filename\tonset\toffset\tevent_label"
    assert (folder / "durations.tsv").read_text().splitlines()[:2] == ["filename\tduration", "clip0.wav\t10.0"]
    assert len(pd.read_csv(folder / "scores" / "raw" / "clip2.tsv", sep="\t")) == 134  # frames before 8.5 s
    back = score_files(
        folder / "ground_truth.tsv", folder / "durations.tsv", folder / "detections.tsv", folder / "scores" / "filtered"
    )
    for key in ("macro_f1", "micro_f1", "psds", "psds_ct", "psds_macro", "psds1", "psds2", "intersection_f1"):
        assert back[key] == pytest.approx(direct[key], abs=1e-12), key
    assert direct["psds1"] > 0 and direct["macro_f1"] > 0
    # Only what is asked for is computed (the per-epoch val_psds1 asks for PSDS1 alone).
    only = evaluate_predictions(
        probs, names, LABELS, reference, durations, compute_psds=False, threshold_free=("psds1",)
    )
    assert only["psds1"] == direct["psds1"] and only["psds2"] is None and only["intersection_f1"] is None
    # The filtered scores are the raw ones through the 7-frame median filter (scipy, reflect border).
    raw = pd.read_csv(folder / "scores" / "raw" / "clip1.tsv", sep="\t")
    filtered = pd.read_csv(folder / "scores" / "filtered" / "clip1.tsv", sep="\t")
    assert np.array_equal(filtered[LABELS].to_numpy(), median_filter(raw[LABELS].to_numpy(), size=(7, 1)))
    # The command line prints and writes strict JSON.
    out = tmp_path / "scores.json"
    code = score_main(
        [
            "--ground-truth",
            str(folder / "ground_truth.tsv"),
            "--durations",
            str(folder / "durations.tsv"),
            "--detections",
            str(folder / "detections.tsv"),
            "--out",
            str(out),
        ]
    )
    assert code == 0 and "macro_f1" in capsys.readouterr().out
    assert json.loads(out.read_text())["macro_f1"] == pytest.approx(direct["macro_f1"])


def test_sed_score_names_a_missing_score_file(tmp_path, capsys):
    probs, names, reference, durations = _clean_system()
    folder = write_set_outputs(tmp_path / "set", probs, names, ["Cat", "Dog"], durations, 0.5, 1, reference)
    (folder / "scores" / "filtered" / "b.tsv").unlink()
    code = score_main(
        [
            "--ground-truth",
            str(folder / "ground_truth.tsv"),
            "--durations",
            str(folder / "durations.tsv"),
            "--scores",
            str(folder / "scores" / "filtered"),
        ]
    )
    assert code == 2 and "no score file b.tsv" in capsys.readouterr().err


def test_metrics_json_has_null_for_nan(tmp_path):
    payload = {
        "per_class_f1": {"Cat": 0.5, "Dog": float("nan")},
        "psds": np.float32(0.25),
        "n": np.int64(3),
        "inf": math.inf,
    }
    assert json_ready(payload) == {"per_class_f1": {"Cat": 0.5, "Dog": None}, "psds": 0.25, "n": 3, "inf": None}
    path = write_json(tmp_path / "metrics.json", payload)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    assert json.loads(text, parse_constant=refuse)["per_class_f1"]["Dog"] is None


def test_sed_scores_eval_version_is_recorded():
    assert metric_versions()["sed_scores_eval"] == "0.0.4"
