"""The shared trainer on the tiny embedded dataset: resume, divergence, presets, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from sed.config import TrainConfig
from sed.presets import PRESETS
from sed.training.trainer import Trainer, TrainingDiverged, prepare_data

TINY_MODEL = dict(
    cnn_filters=(4, 8, 8, 8, 8, 8, 8),
    rnn_hidden=8,
    batch_size=8,
    rampup_epochs=1.0,
    embedded_size="tiny",
    num_threads=1,
)


def tiny(name: str = "baseline", **kw) -> TrainConfig:
    return dataclasses.replace(PRESETS[name], **{**TINY_MODEL, **kw}).validate()


@pytest.fixture(scope="module")
def data(tiny_data_root, session_cache):
    return prepare_data(tiny(), data_root=tiny_data_root, cache_dir=session_cache, progress=False)


def test_batches_have_the_paper_proportions_and_masks(data):
    tr = Trainer(tiny(), data=data, progress=False)
    batch = next(iter(tr.batches))
    assert batch.features.shape == (8, 628, 128)
    assert batch.weak_mask.tolist() == [True, True, False, False, False, False, False, False]
    assert batch.strong_mask.tolist() == [False] * 6 + [True, True]
    # unlabeled and weak clips have no frame targets; unlabeled have no clip targets
    assert float(batch.strong_targets[~batch.strong_mask].abs().sum()) == 0.0
    assert float(batch.weak_targets[2:6].abs().sum()) == 0.0
    # strong clips have events, and their clip targets agree with their frames
    strong = batch.strong_targets[batch.strong_mask]
    assert float(strong.sum()) > 0
    assert torch.equal(strong.amax(dim=1), batch.weak_targets[batch.strong_mask])
    # features arrive normalised with the training-set scaler
    assert abs(float(batch.features.mean())) < 1.0


def test_batch_fractions_set_the_part_sizes_and_a_zero_part_is_left_out(data):
    from sed.training.batches import part_sizes

    assert [part_sizes(b) for b in (8, 12, 24)] == [(2, 4, 2), (3, 6, 3), (6, 12, 6)]  # the paper's 1/4 1/2 1/4
    tr = Trainer(tiny("none", weak_fraction=0.25, strong_fraction=0.5), data=data, progress=False)
    batch = next(iter(tr.batches))
    assert batch.weak_mask.tolist() == [True] * 2 + [False] * 6
    assert batch.strong_mask.tolist() == [False] * 4 + [True] * 4
    tr = Trainer(tiny("none", weak_fraction=0.5, strong_fraction=0.5), data=data, progress=False)
    assert tr.batches.parts == ["weak", "strong"]  # no unlabeled clip is read
    batch = next(iter(tr.batches))
    assert batch.weak_mask.tolist() == [True] * 4 + [False] * 4
    assert batch.strong_mask.tolist() == [False] * 4 + [True] * 4
    strong = batch.strong_targets[batch.strong_mask]
    assert float(strong.sum()) > 0 and float(batch.strong_targets[~batch.strong_mask].abs().sum()) == 0.0
    assert float(batch.weak_targets[batch.weak_mask].sum()) > 0
    with pytest.raises(ValueError, match="strong_fraction"):
        tiny("none", strong_fraction=0.1)  # floor(8 x 0.1) = 0 strong clips
    with pytest.raises(ValueError, match="weak_fraction \\+ strong_fraction"):
        tiny("none", weak_fraction=0.6, strong_fraction=0.5)


@pytest.mark.slow  # a whole training run or several processes
@pytest.mark.dynamics
def test_checkpoint_resume_equals_an_uninterrupted_run(data, tmp_path):
    cfg = tiny("baseline", max_steps_per_epoch=2)
    straight = Trainer(cfg, data=data, progress=False)
    straight.fit(2)

    first = Trainer(cfg, data=data, progress=False)
    first.train_epoch()
    first.save_checkpoint(tmp_path / "ckpt")
    del first
    torch.manual_seed(12345)  # disturb global RNG: the checkpoint must restore it
    resumed = Trainer(cfg, data=data, progress=False)
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert resumed.epoch == 1
    resumed.train_epoch()
    for (name, a), b in zip(straight.student.state_dict().items(), resumed.student.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(straight.teacher.state_dict().values(), resumed.teacher.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.history[-1]["loss_total"] == resumed.history[-1]["loss_total"]
    # checkpoints load with weights_only=True
    state = torch.load(tmp_path / "ckpt" / "trainer_state.pt", weights_only=True)
    assert state["epoch"] == 1


def test_l2_builds_no_teacher_and_mt_does(data):
    assert Trainer(tiny("random-input-l2"), data=data, progress=False).teacher is None
    assert Trainer(tiny("baseline"), data=data, progress=False).teacher is not None


def test_divergence_stops_with_a_clear_error(data):
    cfg = tiny("random-input-l2", augmentation="random", noise_scale=1e38, max_steps_per_epoch=2)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        Trainer(cfg, data=data, progress=False).train_epoch()


def test_diverged_weights_stop_with_a_clear_error(data):
    tr = Trainer(tiny("random-input-l2", max_steps_per_epoch=2), data=data, progress=False)
    with torch.no_grad():
        tr.student.heads.strong.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="weights diverged"):
        tr.train_epoch()


@pytest.mark.slow  # a whole training run or several processes
@pytest.mark.dynamics
@pytest.mark.parametrize("name", list(PRESETS))
def test_each_table1_preset_trains_two_epochs_with_finite_losses(data, name):
    tr = Trainer(tiny(name, max_steps_per_epoch=2), data=data, progress=False)
    tr.fit(2)
    assert tr.epoch == 2 and len(tr.history) == 2
    for row in tr.history:
        for key in ("loss_total", "loss_class", "loss_const", "loss_reg"):
            assert math.isfinite(row[key]), (name, key, row[key])
        assert 0.0 <= row["val_macro_f1"] <= 1.0
    if PRESETS[name].augmentation != "none":
        assert tr.history[-1]["loss_const"] > 0.0


@pytest.mark.slow  # a whole training run or several processes
def test_train_cli_writes_metrics_checkpoint_and_tensorboard(tiny_data_root, session_cache, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "sed.train",
        "--preset",
        "random-latent-l2",
        "--data",
        str(tiny_data_root),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--cache",
        str(session_cache),
        "--set",
        "cnn_filters=4,8,8,8,8,8,8",
        "--set",
        "rnn_hidden=8",
        "--set",
        "batch_size=8",
        "--set",
        "max_steps_per_epoch=2",
        "--set",
        "median_window=9",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == "student"
    assert report["config"]["median_window"] == 9
    assert report["trainable_parameters"] > 0
    assert "eval_psds" in report["public_eval"] and "sed_eval" in report["versions"]
    best = torch.load(out / "best_model.pt", weights_only=True)
    assert set(best["state_dict"]) and best["model"] == "student"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow  # a whole training run or several processes
def test_train_cli_refuses_a_bad_override(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sed.train", "--set", "epsilon=-1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "epsilon" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # a whole training run or several processes
@pytest.mark.dynamics
def test_same_config_and_seed_give_identical_runs(data):
    cfg = tiny("vat-latent-l2", max_steps_per_epoch=2)
    runs = []
    for _ in range(2):
        tr = Trainer(cfg, data=data, progress=False)
        tr.fit(2)
        runs.append(tr)
    keys = ("loss_total", "loss_const", "loss_reg", "val_macro_f1")
    assert [[row[k] for k in keys] for row in runs[0].history] == [[row[k] for k in keys] for row in runs[1].history]
    for a, b in zip(runs[0].student.state_dict().values(), runs[1].student.state_dict().values()):
        assert torch.equal(a, b)
    other = Trainer(dataclasses.replace(cfg, seed=7), data=data, progress=False)
    other.fit(1)
    assert other.history[0]["loss_total"] != runs[0].history[0]["loss_total"]


def test_the_selection_split_is_the_one_the_validation_scores_come_from(data, monkeypatch):
    """selection_split=validation scores the recorded part, not the held-out synthetic clips."""
    from sed.config import ConfigError, apply_overrides

    with pytest.raises(
        ConfigError, match=r"selection_split='public_eval': choose one of \['synthetic_val', 'validation'\]"
    ):
        apply_overrides(tiny(), {"selection_split": "public_eval"})
    assert set(data.split("synthetic_val").filenames).isdisjoint(data.split("validation").filenames)
    for split in ("synthetic_val", "validation"):
        tr = Trainer(tiny(selection_split=split), data=data, progress=False)
        read: list[str] = []
        predict = tr.evaluator.predict
        monkeypatch.setattr(tr.evaluator, "predict", lambda model, name: read.append(name) or predict(model, name))
        val = tr.validate()
        assert read == [split]
        on_split = tr.evaluator.score(split, predict(tr.selected_model(), split), False, 10)
        assert val["val_micro_f1"] == pytest.approx(float(on_split["micro_f1"]))


def test_n_mels_sets_the_features_the_model_and_the_saved_model(tiny_data_root, session_cache, data, tmp_path):
    """`n_mels` is a data field: prepare_data builds features with that many bands, the CNN reads
    them, a prepared dataset of another band count is refused, and best_model.pt predicts with it."""
    import numpy as np

    from sed.errors import ConfigError
    from sed.predict import load_model

    cfg = tiny("none", n_mels=32, cnn_filters=(4, 8, 8, 8), max_steps_per_epoch=2, epochs=1)
    prepared = prepare_data(cfg, data_root=tiny_data_root, cache_dir=session_cache, progress=False)
    assert prepared.feature_config.n_mels == 32
    assert {array.shape[-1] for array in prepared.features.values()} == {32}
    assert prepared.scaler.mean.shape == (32,)

    trainer = Trainer(cfg, data=prepared, progress=False)
    assert trainer.student.cnn.out_features == 8 * 2  # 32 bands pooled by 2 four times
    metrics = trainer.fit()
    assert math.isfinite(metrics["val_macro_f1"])
    loaded = load_model(trainer.save_best_model(tmp_path / "best_model.pt"))
    assert loaded.features.n_mels == 32 and loaded.config.n_mels == 32
    probs = loaded.window_probs(np.zeros((1, loaded.features.clip_samples), dtype=np.float32))
    assert probs.shape == (1, 157, len(prepared.labels))

    with pytest.raises(ConfigError, match=r"n_mels=32, but the prepared data's features have 128 mel bands"):
        Trainer(cfg, data=data, progress=False)
    with pytest.raises(ConfigError, match=r"cnn_filters has 7 blocks.*too many for n_mels=32 \(at most 5\)"):
        tiny("none", n_mels=32)
    with pytest.raises(ConfigError, match=r"n_mels=4: give between 8 and 256"):
        tiny("none", n_mels=4, cnn_filters=(4, 8))
    # the FilterAugment band layout is checked against the run's bands, not the reference's 128
    from sed.presets import ALL_PRESETS

    layout = dict(TINY_MODEL, filter_bands=5, filter_min_width=8)
    dataclasses.replace(ALL_PRESETS["filter-input-l2"], **layout).validate()
    with pytest.raises(ConfigError, match=r"= 40 mel bins > the 32 bands of the input"):
        dataclasses.replace(
            ALL_PRESETS["filter-input-l2"], **{**layout, "n_mels": 32, "cnn_filters": (4, 8, 8, 8)}
        ).validate()
