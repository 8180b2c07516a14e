"""Data preparation: the stored scaler, and a trial reading what the driver prepared."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import sed.data.prepare as prepare_module
from sed.data.prepare import load_prepared, prepare_data, save_prepared
from sed.presets import PRESETS

CFG = dataclasses.replace(PRESETS["none"], embedded_size="tiny").validate()


@pytest.fixture()
def own_tiny(tmp_path, tiny_data_root):
    """A private copy of the tiny dataset (this test moves its audio away)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_data_root, root)
    return root


def test_the_scaler_is_fitted_once_and_then_read(own_tiny, tmp_path, monkeypatch):
    first = prepare_data(CFG, own_tiny, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache" / "features").glob("scaler-*.json"))

    def refuse(*_args, **_kwargs):
        raise AssertionError("fit_scaler ran again")

    monkeypatch.setattr(prepare_module, "fit_scaler", refuse)
    second = prepare_data(CFG, own_tiny, tmp_path / "cache", progress=False)
    assert second.scaler == first.scaler
    assert np.allclose(second.scaler.mean, first.scaler.mean)


def test_a_trial_reads_the_prepared_data_without_touching_audio(own_tiny, tmp_path):
    prepared = prepare_data(CFG, own_tiny, tmp_path / "cache", progress=False)
    path = save_prepared(prepared, tmp_path / "prepared.json")
    shutil.rmtree(own_tiny / "audio")  # nothing below may stat or decode audio
    loaded = load_prepared(path)
    assert loaded.labels == prepared.labels and loaded.scaler == prepared.scaler
    assert loaded.dataset.missing_audio == prepared.dataset.missing_audio
    for name, split in prepared.dataset.splits.items():
        other = loaded.split(name)
        assert other.filenames == split.filenames and other.durations == split.durations
        assert other.events == split.events and other.weak_labels == split.weak_labels
        assert other.audio_paths == split.audio_paths
        assert np.array_equal(loaded.features[name], prepared.features[name])
    strong = prepared.split("synthetic_train").strong_targets(prepared.labels)
    assert np.array_equal(loaded.split("synthetic_train").strong_targets(loaded.labels), strong)


def test_stale_prepared_data_is_refused_naming_the_fix(own_tiny, tmp_path):
    prepared = prepare_data(CFG, own_tiny, tmp_path / "cache", progress=False)
    path = save_prepared(prepared, tmp_path / "prepared.json")
    for entry in (tmp_path / "cache" / "features").glob("*.npy"):
        entry.unlink()
    with pytest.raises(Exception, match="prepare the data again"):
        load_prepared(path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json.*prepare the data again"):
        load_prepared(tmp_path / "broken.json")


def test_the_search_hands_its_prepared_data_to_the_trials(own_tiny, tmp_path, capsys):
    from search.prepared import load_for_trial, prepared_path, save_for_trials

    cache = str(tmp_path / "cache")
    prepared = prepare_data(CFG, own_tiny, cache, progress=False)
    folder = tmp_path / "exp" / "prepared"
    path = save_for_trials(folder, CFG, prepared, str(own_tiny), cache)
    assert path == prepared_path(folder, CFG, str(own_tiny), cache) and path.is_file()
    # a trial of the same dataset (other objective fields) reads it: same scaler, same feature arrays
    trial_cfg = dataclasses.replace(CFG, augmentation="mixup", seed=7)
    data = load_for_trial(folder, trial_cfg, str(own_tiny), cache)
    assert data is not None and data.scaler == prepared.scaler
    for name, array in prepared.features.items():
        assert np.array_equal(np.asarray(data.features[name]), np.asarray(array)), name
    # another dataset, another --data root or cache, or no folder: the trial prepares its own data
    assert load_for_trial(folder, dataclasses.replace(CFG, val_fraction=0.3), str(own_tiny), cache) is None
    assert load_for_trial(folder, CFG, None, cache) is None
    assert load_for_trial(folder, CFG, str(own_tiny), str(tmp_path / "other")) is None
    assert load_for_trial(None, CFG, str(own_tiny), cache) is None
    # an unreadable file is reported and skipped, not fatal
    path.write_text("{not json")
    assert load_for_trial(folder, CFG, str(own_tiny), cache) is None
    assert "preparing the data in the trial instead" in capsys.readouterr().err
