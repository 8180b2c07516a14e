"""sed.features.logmel: log-mel against librosa, tone/onset placement, resampling invariance,
the on-disk cache (hits, keys, crashed builds, two processes) and the per-band scaler."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

import sed.features.compute as compute_module
from sed.data.audio import read_audio
from sed.data.errors import DatasetError
from sed.features.logmel import FeatureConfig, LogMel
from sed.features.scaler import Scaler, fit_scaler
from sed.features.store import FeatureStore

SR = 16000
HOP = 255


def _librosa_reference(wave: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The 2020 baseline recipe written with librosa (docs/reference.md, Features) -> [time, mel]."""
    librosa = pytest.importorskip("librosa")
    mel = librosa.feature.melspectrogram(
        y=wave,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        window=scipy.signal.get_window("hamming", config.n_fft, fftbins=False),
        center=True,
        pad_mode="reflect",
        power=1.0,
        n_mels=config.n_mels,
        fmin=config.f_min,
        fmax=config.f_max,
        htk=False,
        norm=None,
    )
    return librosa.amplitude_to_db(mel, ref=1.0, amin=1e-5, top_db=config.top_db).T


def _mel_centres(config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Centre frequency of each Slaney mel band (the n_mels + 2 edges minus the two ends)."""
    librosa = pytest.importorskip("librosa")
    return librosa.mel_frequencies(n_mels=config.n_mels + 2, fmin=config.f_min, fmax=config.f_max, htk=False)[1:-1]


def _logmel(wave: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    with torch.no_grad():
        return LogMel(config)(torch.from_numpy(wave))[0].numpy()


# --------------------------------------------------------------------- FeatureConfig


def test_feature_config_defaults_are_the_baseline() -> None:
    config = FeatureConfig()
    assert (config.sample_rate, config.n_fft, config.hop_length, config.n_mels) == (16000, 2048, 255, 128)
    assert (config.f_min, config.f_max, config.top_db, config.n_frames) == (0.0, 8000.0, 80.0, 628)
    assert config.clip_samples == 160000


def test_feature_config_key_is_stable_and_normalised() -> None:
    # A literal: if this changes, every existing feature cache is orphaned (bump deliberately).
    assert FeatureConfig().key() == "c4baac8f5fd7daf3"
    assert FeatureConfig(f_max=8000, f_min=0).key() == FeatureConfig().key()
    assert FeatureConfig(n_mels=64).key() != FeatureConfig().key()
    assert FeatureConfig.from_dict(FeatureConfig().to_dict()) == FeatureConfig()


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"f_max": 9000.0}, "f_max"),
        ({"n_mels": 0}, "n_mels"),
        ({"top_db": -3.0}, "top_db"),
        ({"hop_length": 4096}, "hop_length"),
    ],
)
def test_feature_config_refuses_bad_values(values: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FeatureConfig(**values)


def test_feature_config_from_dict_names_unknown_key() -> None:
    with pytest.raises(ValueError, match="n_melz"):
        FeatureConfig.from_dict({"n_melz": 64})


# --------------------------------------------------------------------- LogMel


def test_logmel_matches_librosa_reference_recipe() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(160000) / SR
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(160000)
    wave[:40000] *= 1e-3  # a quiet start: the per-clip top_db floor must engage there
    wave = wave.astype(np.float32)
    ours = _logmel(wave)
    reference = _librosa_reference(wave)
    assert ours.shape == reference.shape == (628, 128)
    assert (reference <= reference.max() - 80 + 1e-4).any()  # the floor is exercised
    assert np.abs(ours - reference).max() < 2e-3  # dB; measured ~2e-4 (float32 vs float64)
    assert ours.min() == pytest.approx(ours.max() - 80.0, abs=1e-4)


def test_top_db_floor_is_per_clip_not_per_batch() -> None:
    rng = np.random.default_rng(1)
    loud = (0.5 * rng.standard_normal(32000)).astype(np.float32)
    quiet = np.zeros(32000, dtype=np.float32)
    quiet[16000:] = 1e-3 * rng.standard_normal(16000)
    config = FeatureConfig(clip_seconds=2.0, n_frames=126)
    with torch.no_grad():
        batch = LogMel(config)(torch.from_numpy(np.stack([loud, quiet]))).numpy()
    np.testing.assert_allclose(batch[0], _logmel(loud, config), atol=1e-4)
    np.testing.assert_allclose(batch[1], _logmel(quiet, config), atol=1e-4)
    # The quiet clip's floor is its own max - 80 dB, not the loud clip's.
    assert batch[1].min() == pytest.approx(batch[1].max() - 80.0, abs=1e-4)
    assert batch[1].min() < batch[0].max() - 80.0 - 20.0


def test_logmel_pads_short_input_with_silence_and_truncates_long_input() -> None:
    config = FeatureConfig(clip_seconds=1.0, n_frames=100)  # 1 s gives 63 frames, padded to 100
    wave = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32)
    out = _logmel(wave, config)
    assert out.shape == (100, 128)
    np.testing.assert_allclose(out[:63], _librosa_reference(wave, config), atol=2e-3)
    floor = max(-100.0, out.max() - 80.0)
    assert np.all(out[63:] == pytest.approx(floor, abs=1e-4))
    assert _logmel(wave, dataclasses.replace(config, n_frames=40)).shape == (40, 128)
    np.testing.assert_array_equal(_logmel(wave, dataclasses.replace(config, n_frames=40)), out[:40])


def test_silence_is_minus_100_db() -> None:
    out = _logmel(np.zeros(160000, dtype=np.float32))
    assert out.shape == (628, 128) and np.all(out == pytest.approx(-100.0))


def test_known_tone_lands_in_expected_band_and_onset_in_expected_frame() -> None:
    onset = 4.0
    t = np.arange(160000) / SR
    wave = np.where((t >= onset) & (t < onset + 2.0), 0.5 * np.sin(2 * np.pi * 1000.0 * t), 0.0).astype(np.float32)
    out = _logmel(wave)
    band = int(np.argmin(np.abs(_mel_centres() - 1000.0)))
    assert band == 42  # Slaney centres: 982 Hz, 1006 Hz, 1030 Hz around 1 kHz
    assert int(out.mean(axis=0).argmax()) == band
    # Centred frames: frame k is centred on sample k * hop. The band level crosses
    # -6 dB of its steady value when half of the window covers the tone, i.e. when
    # the frame centre passes the onset: frame onset * sr / hop = 250.98.
    level = out[:, band]
    steady = np.median(level[int((onset + 0.5) * SR / HOP) : int((onset + 1.5) * SR / HOP)])
    first = int(np.argmax(level >= steady - 6.02))
    assert abs(first - onset * SR / HOP) <= 1.0
    assert level[: first - 8].max() == pytest.approx(level.max() - 80.0, abs=1e-3)  # silence before: floor


def test_resampled_stereo_44k_gives_the_same_features_as_16k_mono(tmp_path: Path) -> None:
    # Band-limited content (120 random partials below 6 kHz) evaluated analytically at both rates,
    # so that resampling is near-exact; the stereo file is (s + d, s - d), whose mean is s.
    rng = np.random.default_rng(3)
    freqs, phases = rng.uniform(40.0, 6000.0, 120), rng.uniform(0, 2 * np.pi, 120)
    amps = rng.uniform(0.2, 1.0, 120) / 40

    def signal(rate: int, seconds: float) -> np.ndarray:
        t = np.arange(int(rate * seconds)) / rate
        partials = amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])
        return partials.sum(axis=0) * (0.55 + 0.45 * np.sin(2 * np.pi * 0.25 * t))

    seconds = 4.0  # the rest of the 10 s clip is padded silence in both versions
    mono16 = signal(16000, seconds).astype(np.float32)
    s44 = signal(44100, seconds)
    d44 = 0.1 * np.sin(2 * np.pi * 700.0 * np.arange(s44.size) / 44100)
    sf.write(tmp_path / "mono16.wav", mono16, 16000, subtype="FLOAT")
    sf.write(
        tmp_path / "stereo44.wav", np.stack([s44 + d44, s44 - d44], axis=1).astype(np.float32), 44100, subtype="FLOAT"
    )

    a = _logmel(read_audio(tmp_path / "mono16.wav"))
    b = _logmel(read_audio(tmp_path / "stereo44.wav"))
    content_bands = _mel_centres() < 5500.0  # above the content only numerical noise at the floor
    content_frames = slice(0, int(seconds * SR / HOP) - 4)
    diff = np.abs(a - b)[content_frames][:, content_bands]
    # Stated tolerance: max 0.5 dB, mean 0.05 dB (measured ~0.27 dB and ~0.01 dB; torchaudio's
    # default sinc resampler, width 6, rolloff 0.99).
    assert diff.max() < 0.5
    assert diff.mean() < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_logmel_on_cuda_matches_cpu() -> None:
    wave = torch.from_numpy((0.2 * np.random.default_rng(4).standard_normal((3, 160000))).astype(np.float32))
    module = LogMel()
    with torch.no_grad():
        cpu = module(wave)
        gpu = module.to("cuda")(wave.to("cuda")).cpu()
    assert gpu.shape == (3, 628, 128)
    assert (gpu - cpu).abs().max().item() < 5e-2  # dB; measured <= 0.009 dB on an H200


# --------------------------------------------------------------------- FeatureStore

SMALL = FeatureConfig(clip_seconds=1.0, n_frames=63)


@dataclass
class FakeSplit:
    """Stand-in for sed.data.desed.Split: the cache needs only these three attributes."""

    name: str
    filenames: list[str]
    audio_paths: list[Path]


def _write_clips(folder: Path, n: int, seed: int = 0, rate: int = SR) -> FakeSplit:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for index in range(n):
        name = f"clip_{index:03d}.wav"
        t = np.arange(rate) / rate
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.02 * rng.standard_normal(rate)
        sf.write(folder / name, wave.astype(np.float32), rate, subtype="PCM_16")
        names.append(name)
    return FakeSplit("synthetic_train", names, [folder / name for name in names])


def _expected(split: FakeSplit, config: FeatureConfig = SMALL) -> np.ndarray:
    return np.stack(
        [_logmel(read_audio(p, config.sample_rate, config.clip_seconds), config) for p in split.audio_paths]
    )


def test_store_builds_once_then_hits_without_decoding(tmp_path: Path, monkeypatch, capsys) -> None:
    split = _write_clips(tmp_path / "audio", 7)
    store = FeatureStore(tmp_path / "cache", batch_size=3)
    first = store.features(split, SMALL)
    assert store.last_stats is not None and not store.last_stats.cache_hit
    assert isinstance(first, np.memmap) and not first.flags.writeable
    assert first.shape == (7, 63, 128) and first.dtype == np.float32
    np.testing.assert_allclose(first, _expected(split), atol=1e-4)
    assert "100 %" in capsys.readouterr().err  # progress goes to stderr

    key = store.key(split, SMALL)
    sidecar = json.loads((tmp_path / "cache" / f"{key}.json").read_text())
    assert sidecar["filenames"] == split.filenames and sidecar["shape"] == [7, 63, 128]
    assert sidecar["config"] == SMALL.to_dict()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [f"{key}.npy", f"{key}.json", f"{key}.lock"]
    )

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cache hit must not decode audio")

    monkeypatch.setattr(compute_module, "read_audio", no_decoding)
    again_store = FeatureStore(tmp_path / "cache")  # a fresh object, e.g. another trial
    second = again_store.features(split, SMALL, progress=False)
    assert again_store.last_stats is not None and again_store.last_stats.cache_hit
    np.testing.assert_array_equal(second, first)


def test_store_default_folder_is_sedtune_cache_features(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEDTUNE_CACHE", str(tmp_path / "somewhere"))
    assert FeatureStore().root == (tmp_path / "somewhere" / "features").resolve()


def test_key_changes_with_config_file_content_and_order(tmp_path: Path) -> None:
    split = _write_clips(tmp_path / "audio", 3)
    store = FeatureStore(tmp_path / "cache")
    key = store.key(split, SMALL)
    assert store.key(split, SMALL) == key
    assert store.key(split, dataclasses.replace(SMALL, n_mels=64)) != key
    assert store.key(split, dataclasses.replace(SMALL, top_db=60.0)) != key
    reordered = FakeSplit(split.name, split.filenames[::-1], split.audio_paths[::-1])
    assert store.key(reordered, SMALL) != key
    stat = os.stat(split.audio_paths[1])
    os.utime(split.audio_paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # "touch"
    touched = store.key(split, SMALL)
    assert touched != key
    # The changed file is recomputed: the new key builds a new array.
    store.features(split, SMALL, progress=False)
    assert store.last_stats is not None and not store.last_stats.cache_hit and store.last_stats.key == touched


def test_crashed_build_leftovers_are_ignored_and_rebuilt(tmp_path: Path) -> None:
    split = _write_clips(tmp_path / "audio", 4, seed=5)
    cache = tmp_path / "cache"
    cache.mkdir()
    store = FeatureStore(cache)
    key = store.key(split, SMALL)
    # A build that died mid-write: a partial tmp array and tmp sidecar of another pid ...
    (cache / f"{key}.tmp-999999.npy").write_bytes(b"\x93NUMPY garbage, half written")
    (cache / f"{key}.tmp-999999.json").write_text('{"key": "')
    # ... and a final-looking array with no sidecar (must not count either).
    np.save(cache / f"{key}.npy", np.zeros((4, 63, 128), dtype=np.float32))
    result = store.features(split, SMALL, progress=False)
    assert store.last_stats is not None and not store.last_stats.cache_hit
    np.testing.assert_allclose(result, _expected(split), atol=1e-4)
    assert not list(cache.glob(f"{key}.tmp-*"))


def test_sidecar_that_disagrees_forces_a_rebuild(tmp_path: Path) -> None:
    split = _write_clips(tmp_path / "audio", 2, seed=6)
    store = FeatureStore(tmp_path / "cache")
    good = np.array(store.features(split, SMALL, progress=False))
    key = store.key(split, SMALL)
    sidecar = tmp_path / "cache" / f"{key}.json"
    meta = json.loads(sidecar.read_text())
    meta["filenames"] = ["other.wav", "names.wav"]
    sidecar.write_text(json.dumps(meta))
    np.save(tmp_path / "cache" / f"{key}.npy", np.zeros((2, 63, 128), dtype=np.float32))
    rebuilt = store.features(split, SMALL, progress=False)
    assert store.last_stats is not None and not store.last_stats.cache_hit
    np.testing.assert_array_equal(rebuilt, good)
    # A truncated final array (disk full) is not used either.
    path = tmp_path / "cache" / f"{key}.npy"
    path.write_bytes(path.read_bytes()[:1000])
    np.testing.assert_array_equal(store.features(split, SMALL, progress=False), good)
    assert not store.last_stats.cache_hit


def test_store_refuses_missing_and_bad_audio_naming_the_file(tmp_path: Path) -> None:
    split = _write_clips(tmp_path / "audio", 3, seed=7)
    split.audio_paths[1].unlink()
    store = FeatureStore(tmp_path / "cache")
    with pytest.raises(DatasetError, match="clip_001.wav"):
        store.features(split, SMALL, progress=False)
    split.audio_paths[1].write_text("not audio")
    with pytest.raises(DatasetError, match="clip_001.wav"):
        store.features(split, SMALL, progress=False)
    assert not list((tmp_path / "cache").glob("*.npy"))  # nothing half-built is left behind


def test_store_resamples_other_rates_and_handles_empty_split(tmp_path: Path) -> None:
    split = _write_clips(tmp_path / "audio44", 2, seed=8, rate=44100)
    out = FeatureStore(tmp_path / "cache").features(split, SMALL, progress=False)
    np.testing.assert_allclose(out, _expected(split), atol=1e-4)
    empty = FeatureStore(tmp_path / "cache").features(FakeSplit("weak", [], []), SMALL)
    assert empty.shape == (0, 63, 128)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_store_builds_on_cuda_like_on_cpu(tmp_path: Path) -> None:
    split = _write_clips(tmp_path / "audio", 5, seed=12)
    cpu = FeatureStore(tmp_path / "cpu", batch_size=2).features(split, SMALL, progress=False)
    gpu = FeatureStore(tmp_path / "gpu", batch_size=2, device="cuda").features(split, SMALL, progress=False)
    assert gpu.shape == cpu.shape == (5, 63, 128)
    assert np.abs(gpu - cpu).max() < 5e-2  # dB; measured <= 0.009 dB on an H200


_RACE_SCRIPT = r"""
import json, sys, time
from pathlib import Path
import sed.features.compute as C
import sed.features.logmel as FC
import sed.features.store as F
split_dir, cache_dir, go_file, ready_file = map(Path, sys.argv[1:5])
calls = []
original = C.read_audio
def slow_read(*args, **kwargs):
    calls.append(1)
    time.sleep(0.05)
    return original(*args, **kwargs)
C.read_audio = slow_read
class S:
    name = "race"
    filenames = sorted(p.name for p in split_dir.glob("*.wav"))
    audio_paths = [split_dir / n for n in filenames]
ready_file.touch()
while not go_file.exists():
    time.sleep(0.005)
store = F.FeatureStore(cache_dir, batch_size=2, decode_workers=1)
out = store.features(S, FC.FeatureConfig(clip_seconds=1.0, n_frames=63), progress=False)
print(json.dumps({"calls": len(calls), "hit": store.last_stats.cache_hit, "waited": store.last_stats.waited_for_lock_seconds, "sum": float(out.sum(dtype="float64"))}))
"""


@pytest.mark.slow  # a whole training run or several processes
def test_two_processes_asking_at_once_compute_once(tmp_path: Path) -> None:
    split = _write_clips(tmp_path / "audio", 8, seed=9)
    go = tmp_path / "go"
    processes = []
    for index in range(2):
        ready = tmp_path / f"ready{index}"
        args = [str(tmp_path / "audio"), str(tmp_path / "cache"), str(go), str(ready)]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", _RACE_SCRIPT, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        )
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        time.sleep(0.01)
    go.touch()
    reports = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    assert sum(r["calls"] for r in reports) == len(split.filenames)  # decoded once in total
    assert sorted(r["hit"] for r in reports) == [False, True]
    assert reports[0]["sum"] == reports[1]["sum"]
    # The builds overlapped (the build takes >= 8 x 50 ms): the hit waited on the lock (measured ~0.42 s).
    assert max(r["waited"] for r in reports if r["hit"]) > 0.05


# --------------------------------------------------------------------- Scaler


def test_fit_scaler_gives_zero_mean_unit_std_per_band(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    offsets, scales = rng.uniform(-80, 20, 16), rng.uniform(0.5, 30, 16)
    parts = []
    for index, n in enumerate([5, 3]):
        data = (rng.standard_normal((n, 50, 16)) * scales + offsets).astype(np.float32)
        np.save(tmp_path / f"part{index}.npy", data)
        parts.append(np.load(tmp_path / f"part{index}.npy", mmap_mode="r"))
    scaler = fit_scaler(parts, chunk_rows=37)  # chunks straddle clips and arrays
    everything = np.concatenate([np.asarray(p).reshape(-1, 16) for p in parts]).astype(np.float64)
    np.testing.assert_allclose(scaler.mean, everything.mean(axis=0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(scaler.std, everything.std(axis=0), rtol=1e-10)
    normalised = np.concatenate([scaler.transform(p).reshape(-1, 16) for p in parts])
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.std(axis=0), 1.0, atol=1e-5)
    # torch tensors: same numbers, same dtype, broadcasting over the last axis.
    tensor = torch.from_numpy(np.array(parts[0]))
    np.testing.assert_allclose(scaler.transform(tensor).numpy(), scaler.transform(parts[0]), atol=1e-6)
    assert scaler.transform(tensor).dtype == torch.float32
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(tensor)).numpy(), parts[0], atol=1e-4)


def test_scaler_round_trips_and_floors_constant_bands() -> None:
    data = np.random.default_rng(11).standard_normal((4, 10, 3)).astype(np.float32)
    data[..., 1] = -100.0  # a band stuck at the floor
    scaler = fit_scaler([data], min_std=1e-5)
    assert scaler.std[1] == 1e-5
    assert np.isfinite(scaler.transform(data)).all() and np.all(scaler.transform(data)[..., 1] == 0.0)
    restored = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert restored == scaler
    with pytest.raises(ValueError, match="bands"):
        scaler.transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="mel bands"):
        fit_scaler([data, np.zeros((1, 10, 4), dtype=np.float32)])
    with pytest.raises(ValueError, match="std"):
        Scaler.from_dict({"mean": [0.0]})
    with pytest.raises(ValueError, match="no arrays"):
        fit_scaler([])
