"""sed.data.synth: the deterministic embedded DESED-like dataset."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import stft

from sed.constants import DESED_CLASSES
from sed.data import DatasetError, load_desed, synth
from sed.data.desed import LAYOUT

REPO = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    return {
        "a": synth.generate_dataset(base / "a", "tiny", seed=0, workers=1),
        "b": synth.generate_dataset(base / "b", "tiny", seed=0, workers=2),  # two spawned processes
        "other": synth.generate_dataset(base / "other", "tiny", seed=1, workers=1),
    }


def test_same_seed_gives_the_same_bytes_whatever_the_workers(builds):
    a, b = _files(builds["a"]), _files(builds["b"])
    assert a.keys() == b.keys()
    assert len([k for k in a if k.endswith(".wav")]) == 20 + 8 + 16 + 8 + 8
    assert [k for k in a if a[k] != b[k]] == []


def test_another_seed_gives_other_audio_and_labels(builds):
    a, other = _files(builds["a"]), _files(builds["other"])
    assert a.keys() == other.keys()  # same names, other contents
    for part in LAYOUT.values():
        assert a[part.metadata] != other[part.metadata] or part.kind == "unlabeled"
        first = next(k for k in a if k.startswith(part.audio_dir) and k.endswith(".wav"))
        assert a[first] != other[first]


def test_output_passes_load_desed_with_the_ten_classes(builds):
    data = load_desed(builds["a"])
    assert data.labels == DESED_CLASSES
    counts = {name: len(split) for name, split in data.splits.items()}
    assert counts["synthetic_train"] + counts["synthetic_val"] == 20
    assert counts["synthetic_val"] >= 1 and counts["synthetic_train"] >= 1
    assert (counts["weak"], counts["unlabeled"], counts["validation"], counts["public_eval"]) == (8, 16, 8, 8)
    assert data.missing_audio == dict.fromkeys(data.splits, 0)
    assert data.splits["public_eval"].durations == [10.0] * 8
    for split in data.splits.values():
        for path in split.audio_paths:
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 160000, "PCM_16")
    for name in ("weak",):
        assert all(1 <= len(labels) <= 4 for labels in data.splits[name].weak_labels)
    marker = json.loads((builds["a"] / synth.COMPLETE_MARKER).read_text())
    assert marker["size"] == "tiny" and marker["seed"] == 0 and marker["counts"]["synthetic"] == 20


def _strong_clips(root: Path):
    data = load_desed(root)
    for name in ("synthetic_train", "synthetic_val", "validation", "public_eval"):
        split = data.splits[name]
        yield from zip(split.audio_paths, split.events)


def test_events_have_class_typical_durations_whole_ms_and_no_same_class_overlap(builds):
    for _path, events in _strong_clips(builds["a"]):
        assert 1 <= len(events) <= 4
        for event in events:
            low, high = synth.CLASS_DURATIONS[event.label]
            assert 0.001 <= event.offset - event.onset <= high + 1e-9
            assert abs(event.onset * 1000 - round(event.onset * 1000)) < 1e-6
            assert event.offset <= 10.0
        for i, first in enumerate(events):
            for second in events[i + 1 :]:
                if first.label == second.label:
                    assert second.onset >= first.offset + 0.25 - 1e-9 or first.onset >= second.offset + 0.25 - 1e-9


def test_labelled_regions_are_louder_than_the_background(builds):
    # Event-to-background ratios are 6-24 dB on the event's louder half, so the mean power
    # inside the labels must exceed the power outside by more than 3 dB in every clip.
    ratios = []
    for path, events in _strong_clips(builds["a"]):
        audio, rate = sf.read(str(path))
        inside = np.zeros(len(audio), dtype=bool)
        for event in events:
            inside[int(round(event.onset * rate)) : int(round(event.offset * rate))] = True
        if inside.all():
            continue
        ratios.append(10 * np.log10(np.mean(audio[inside] ** 2) / np.mean(audio[~inside] ** 2)))
    assert len(ratios) >= 30 and min(ratios) > 3.0


def test_eval_clips_are_not_training_clips(builds):
    def digests(part: str) -> set[str]:
        folder = builds["a"] / LAYOUT[part].audio_dir
        return {hashlib.sha256(p.read_bytes()[44:]).hexdigest() for p in folder.glob("*.wav")}

    training = digests("synthetic") | digests("weak") | digests("unlabeled") | digests("validation")
    evaluation = digests("public_eval")
    assert len(evaluation) == 8 and not (evaluation & training)
    assert len(training) == 20 + 8 + 16 + 8  # no clip repeated inside the training parts either


def test_render_event_is_whole_ms_and_at_most_the_asked_duration():
    rng = np.random.default_rng(0)
    for label in DESED_CLASSES:
        audio = synth.render_event(label, 1.2345, rng)
        assert audio.dtype == np.float32 and np.isfinite(audio).all()
        assert len(audio) % 16 == 0 and 16 <= len(audio) <= 1234 * 16
    with pytest.raises(DatasetError, match="Unicorn"):
        synth.render_event("Unicorn", 1.0, rng)


# --------------------------------------------------------------------------- distinct classes

_EDGES = np.geomspace(60, 7900, 17)


def _describe(audio: np.ndarray) -> np.ndarray:
    """Spectral shape (16 log bands, level removed), flatness, log centroid, frame-energy spread."""
    f, _t, z = stft(audio, fs=16000, nperseg=512, noverlap=256, boundary=None)
    power = np.abs(z) ** 2 + 1e-12
    energy = power.sum(axis=0)
    active = power[:, energy > 1e-3 * energy.max()]
    bands = np.stack([active[(f >= lo) & (f < hi)].sum(axis=0) for lo, hi in zip(_EDGES[:-1], _EDGES[1:])])
    shape = 10 * np.log10(bands.mean(axis=1) + 1e-10)
    shape -= shape.mean()
    flatness = np.mean(10 * np.log10(np.exp(np.mean(np.log(active[1:]), axis=0)) / np.mean(active[1:], axis=0)))
    centroid = np.mean(np.log2((f[:, None] * active).sum(axis=0) / active.sum(axis=0)))
    spread = np.std(10 * np.log10(energy[energy > 1e-3 * energy.max()]))
    return np.concatenate([shape, [flatness, 10 * centroid, spread]])


def _renders(seed: int, per_class: int) -> dict[str, np.ndarray]:
    out = {}
    for index, label in enumerate(DESED_CLASSES):
        rng = np.random.default_rng([seed, index])
        low, high = synth.CLASS_DURATIONS[label]
        out[label] = np.stack(
            [_describe(synth.render_event(label, rng.uniform(low, high), rng)) for _ in range(per_class)]
        )
    return out


def test_the_ten_classes_are_distinct_sounds():
    """Nearest class centroid on spectral descriptors, fitted and tested on independent renders.

    Ten sine tones (or ten copies of one sound with other labels) would fail:
    this needs each class to have its own spectral shape, flatness, centroid
    and temporal texture, consistently across random draws.
    """
    fit, held_out = _renders(1, 8), _renders(2, 8)
    scale = np.sqrt(np.mean([fit[label].var(axis=0) for label in DESED_CLASSES], axis=0)) + 1e-6
    centroids = np.stack([fit[label].mean(axis=0) for label in DESED_CLASSES]) / scale
    confusion = np.zeros((10, 10), dtype=int)
    for truth, label in enumerate(DESED_CLASSES):
        for features in held_out[label] / scale:
            confusion[truth, np.argmin(np.linalg.norm(centroids - features, axis=1))] += 1
    per_class = confusion.diagonal() / confusion.sum(axis=1)
    assert per_class.mean() >= 0.9, confusion
    assert per_class.min() >= 0.6, confusion
    # Tonal sounds are far less flat than the noisy ones (spectral flatness, dB).
    flat = {label: np.median(fit[label][:, -3]) for label in DESED_CLASSES}
    for tonal in ("Alarm_bell_ringing", "Cat", "Electric_shaver_toothbrush"):
        for noisy in ("Blender", "Frying", "Vacuum_cleaner"):
            assert flat[tonal] < flat[noisy] - 20, flat


# --------------------------------------------------------------------------- cache, CLI


def test_ensure_embedded_builds_once_then_reuses(tmp_path, capsys, monkeypatch, builds):
    root = synth.ensure_embedded("tiny", seed=0, cache_dir=tmp_path)
    assert root == (tmp_path / "embedded" / "tiny-seed0-v1").absolute()
    err = capsys.readouterr().err
    assert err.count("generating the embedded dataset 'tiny'") == 1 and err.strip().endswith("s")
    assert _files(root) == _files(builds["a"])  # same bytes as generate_dataset

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt a complete dataset")

    monkeypatch.setattr(synth, "generate_dataset", no_build)
    assert synth.ensure_embedded("tiny", seed=0, cache_dir=tmp_path) == root
    monkeypatch.setenv("SEDTUNE_CACHE", str(tmp_path))  # the environment variable names the same cache
    assert synth.ensure_embedded("tiny", seed=0) == root
    assert capsys.readouterr().err == ""


def test_ensure_embedded_replaces_an_incomplete_folder_and_stale_temporaries(tmp_path, capsys):
    target = synth.embedded_dir("tiny", 0, tmp_path)
    target.mkdir(parents=True)
    (target / "half-written.wav").write_bytes(b"x")
    stale = target.parent / f".{target.name}.tmp-dead"
    stale.mkdir()
    root = synth.ensure_embedded("tiny", seed=0, cache_dir=tmp_path)
    assert (root / synth.COMPLETE_MARKER).is_file() and not (root / "half-written.wav").exists()
    assert not stale.exists()
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".") and "tmp" in p.name) == []
    assert "generating" in capsys.readouterr().err


def test_concurrent_processes_build_once(tmp_path):
    code = (
        "import sys; from sed.data.synth import ensure_embedded; "
        "print(ensure_embedded('tiny', seed=3, cache_dir=sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0] and outputs[0][0].strip().endswith("tiny-seed3-v1")
    assert sum(err.count("generating the embedded dataset") for _out, err in outputs) == 1


def test_bad_size_or_seed_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="huge"):
        synth.ensure_embedded("huge", cache_dir=tmp_path)
    with pytest.raises(DatasetError, match="seed"):
        synth.generate_dataset(tmp_path / "x", "tiny", seed=-1)


def test_cli_help_and_refusal_of_a_foreign_folder(tmp_path, builds, capsys):
    run = subprocess.run(
        [sys.executable, "-m", "sed.data.synth", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert run.returncode == 0 and "--size" in run.stdout and "tiny" in run.stdout and "--seed" in run.stdout
    assert run.stderr == ""  # no runpy warning about the module being imported twice

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as caught:
        synth.main([str(foreign), "--size", "tiny"])
    assert caught.value.code == 2 and "--force" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"

    # A folder that already holds the same complete dataset is accepted as it is.
    assert synth.main([str(builds["a"]), "--size", "tiny", "--seed", "0"]) == 0
    assert capsys.readouterr().out.strip() == str(builds["a"])
