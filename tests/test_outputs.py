"""End to end on the tiny embedded data: sed.train's files (metrics.json, best_model.pt, DCASE
outputs) read back with the DCASE tools, and sed.predict on new audio of any rate, channels, length."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from sed.constants import FRAME_STEP_S
from sed.data.audio import read_audio
from sed.predict import load_model, predict_file
from sed.predict import main as predict_main
from sed.score import score_files
from sed.train import main as train_main

TINY = [
    "cnn_filters=4,8,8,8,8,8,8",
    "rnn_hidden=8",
    "batch_size=8",
    "rampup_epochs=1",
    "num_threads=1",
    "embedded_size=tiny",
    "compute_val_psds1=true",
    "selection_metric=val_psds1",
]


@pytest.fixture(scope="module")
def run(tiny_data_root, session_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    args = [
        "--preset",
        "random-latent-l2",
        "--epochs",
        "1",
        "--data",
        str(tiny_data_root),
        "--cache",
        str(session_cache),
        "--out",
        str(out),
    ]
    for item in TINY:
        args += ["--set", item]
    assert train_main(args) == 0
    return out


def _refuse(constant: str) -> None:
    raise ValueError(f"bare {constant} in metrics.json")


def test_metrics_json_is_strict_and_the_files_give_its_numbers(run):
    report = json.loads((run / "metrics.json").read_text(), parse_constant=_refuse)
    assert report["config"]["selection_metric"] == "val_psds1"
    assert report["validation_synthetic"]["val_psds1"] is not None
    assert set(report["clipped_events"]) >= {"validation", "public_eval"}
    public = report["public_eval"]
    # Classes absent from the tiny public-eval set have F1 null (not NaN).
    assert None in public["eval_per_class_f1"].values()
    # Public eval: every number; DESED validation: the event F1 of its detections (psds_eval is slow).
    for folder, prefix, keys in (
        (
            run / "public_eval",
            "eval",
            ("macro_f1", "micro_f1", "psds", "psds_ct", "psds_macro", "psds1", "psds2", "intersection_f1"),
        ),
        (run / "validation", "validation", ("macro_f1", "micro_f1")),
    ):
        scores = score_files(
            folder / "ground_truth.tsv",
            folder / "durations.tsv",
            folder / "detections.tsv",
            folder / "scores" / "filtered" if prefix == "eval" else None,
        )
        numbers = report["public_eval" if prefix == "eval" else "validation_desed"]
        for key in keys:
            expected = numbers[f"{prefix}_{key}"]
            if expected is None:
                assert math.isnan(scores[key]), key
            else:
                assert scores[key] == pytest.approx(expected, abs=1e-9), (prefix, key)


def test_best_model_is_self_describing(run):
    state = torch.load(run / "best_model.pt", weights_only=True)
    assert state["format"] == "sedtune-model-1"
    assert state["features"]["sample_rate"] == 16000 and state["features"]["n_mels"] == 128
    assert state["frame_step"] == FRAME_STEP_S and len(state["labels"]) == 10
    assert state["scaler"]["mean"].shape == (128,)
    assert state["versions"]["sed_scores_eval"] == "0.0.4" and "torch" in state["versions"]
    assert state["config"]["selection_metric"] == "val_psds1" and "val_psds1" in state["selection"]


def _tone(rate: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    return np.stack([wave] * channels, axis=1).astype(np.float32) if channels > 1 else wave.astype(np.float32)


def test_predict_any_rate_channels_and_length(run, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "short.wav", _tone(44100, 3.0, 2), 44100)  # 3 s, 44.1 kHz stereo
    sf.write(audio / "ten.wav", _tone(16000, 10.0, 1), 16000)
    sf.write(audio / "long.flac", _tone(22050, 25.0, 1), 22050)  # 25 s, 22.05 kHz
    model = load_model(run / "best_model.pt")

    # A 10 s 16 kHz clip is one window, scored as in evaluation.
    probs, duration = predict_file(model, audio / "ten.wav")
    assert duration == 10.0 and probs.shape == (157, 10)
    with torch.inference_mode():
        wave = torch.from_numpy(read_audio(audio / "ten.wav"))[None]
        direct = model.model(model.scaler.transform(model.logmel(wave)))[0][0].numpy()
    assert np.allclose(probs, direct, atol=1e-6)

    # 25 s: ceil(25 / 0.06375) = 393 frames from windows starting at 0, 9.945 and 19.89 s
    # (156 frames apart); frames 156..311 are the second window's first 156 frames.
    probs, duration = predict_file(model, audio / "long.flac")
    assert duration == pytest.approx(25.0) and probs.shape == (393, 10)
    wave16 = read_audio(audio / "long.flac", clip_seconds=None)
    second = np.zeros(160000, np.float32)
    second[:] = wave16[156 * 1020 : 156 * 1020 + 160000]
    with torch.inference_mode():
        window = model.model(model.scaler.transform(model.logmel(torch.from_numpy(second)[None])))[0][0].numpy()
    assert np.allclose(probs[156:312], window[:156], atol=1e-6)

    probs, duration = predict_file(model, audio / "short.wav")
    assert duration == pytest.approx(3.0) and probs.shape == (48, 10)  # frames starting before 3 s

    out = tmp_path / "out"
    assert (
        predict_main(["--model", str(run / "best_model.pt"), str(audio), "--out", str(out), "--threshold", "0.3"]) == 0
    )
    durations = pd.read_csv(out / "durations.tsv", sep="\t")
    assert durations["filename"].tolist() == ["long.flac", "short.wav", "ten.wav"]
    assert durations["duration"].tolist() == pytest.approx([25.0, 3.0, 10.0])
    detections = pd.read_csv(out / "detections.tsv", sep="\t")
    assert list(detections.columns) == ["filename", "onset", "offset", "event_label"]
    ends = detections.groupby("filename")["offset"].max()
    for name, end in ends.items():
        assert end <= float(durations.set_index("filename").loc[name, "duration"]) + 1e-9
    assert sorted(p.name for p in (out / "scores" / "raw").iterdir()) == ["long.tsv", "short.tsv", "ten.tsv"]
    long_scores = pd.read_csv(out / "scores" / "filtered" / "long.tsv", sep="\t")
    assert len(long_scores) == 393 and long_scores["offset"].iloc[-1] == pytest.approx(25.0)


def test_predict_refuses_a_missing_model_and_an_empty_folder(tmp_path, capsys):
    assert predict_main(["--model", str(tmp_path / "none.pt"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "model file not found" in capsys.readouterr().err
