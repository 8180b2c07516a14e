"""Bad input through `python -m search.run`: every case is refused before any
training, with exit code 2, one paragraph naming the file / key / line and the
fix, no traceback, and nothing written to the output folder.

Space files and command-line mistakes are refused before the dataset is read;
dataset defects are found while the dataset is checked and its features are
built, still before Ray starts.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from search.run import main

REPO = Path(__file__).resolve().parents[1]
TINY_SPACE = (REPO / "tests" / "spaces" / "tiny.yaml").read_text()


def refuse(argv: list[str], capsys, out: Path, *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    # progress lines (feature building) may come first; the refusal is one paragraph, last
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip("\n").splitlines()[-1] == errors[0], err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in errors[0], (needle, err)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    return err


# ----------------------------------------------------------------------------- spaces
SPACE_CASES = {
    "yaml-syntax": (
        ("augmentation: {choice: [random, vat, mixup]}", "augmentation: {choice: [random, vat, mixup}"),
        ("line",),
    ),
    "unknown-key": (("num_samples: 4", "num_sample: 4"), ("num_sample",)),
    "wrong-type": (("num_samples: 4", "num_samples: many"), ("num_samples",)),
    "low-above-high": (
        ("noise_scale: {loguniform: [0.01, 1.0]", "noise_scale: {uniform: [1.0, 0.01]"),
        ("noise_scale",),
    ),
    "loguniform-nonpositive": (
        ("noise_scale: {loguniform: [0.01, 1.0]", "noise_scale: {loguniform: [0.0, 1.0]"),
        ("noise_scale",),
    ),
    "unknown-augmentation": (
        ("choice: [random, vat, mixup]", "choice: [random, vat, cutout]"),
        ("augmentation", "cutout"),
    ),
    "unknown-location": (("choice: [input, latent]", "choice: [input, decoder]"), ("locations", "decoder")),
    "empty-choice": (("choice: [input, latent]", "choice: []"), ("locations",)),
    "metric-never-reported": (("metric: val_macro_f1", "metric: val_accuracy"), ("metric", "val_accuracy")),
    "top-k-above-trials": (("top_k: 1", "top_k: 9"), ("top_k",)),
}


@pytest.mark.parametrize("case", list(SPACE_CASES))
def test_bad_space_files(case, tmp_path, capsys):
    (old, new), needles = SPACE_CASES[case]
    assert old in TINY_SPACE
    space = tmp_path / f"{case}.yaml"
    space.write_text(TINY_SPACE.replace(old, new))
    out = tmp_path / "out"
    refuse(["--space", str(space), "--out", str(out)], capsys, out, f"{case}.yaml", *needles)


# ----------------------------------------------------------------------------- command line
def test_missing_space_file(tmp_path, capsys):
    out = tmp_path / "out"
    refuse(["--space", str(tmp_path / "nope.yaml"), "--out", str(out)], capsys, out, "nope.yaml")


def test_unwritable_output_directory(tmp_path, capsys, tiny_data_root):
    out = Path("/proc/sedtune-cannot-write-here")
    err = refuse(
        ["--space", str(REPO / "tests" / "spaces" / "tiny.yaml"), "--out", str(out), "--data", str(tiny_data_root)],
        capsys,
        tmp_path / "unused",
        str(out),
    )
    assert "--out" in err


def test_existing_experiment_without_resume(tmp_path, capsys, tiny_data_root):
    out = tmp_path / "out"
    (out / "tiny").mkdir(parents=True)
    (out / "tiny" / "sedtune_run.json").write_text("{}")
    code = main(["--space", str(REPO / "tests" / "spaces" / "tiny.yaml"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--resume" in err and "Traceback" not in err
    assert sorted(p.name for p in (out / "tiny").iterdir()) == ["sedtune_run.json"]  # untouched


def test_unreachable_address_is_answered_quickly(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "out"
    start = time.monotonic()
    refuse(
        ["--space", str(REPO / "tests" / "spaces" / "tiny.yaml"), "--out", str(out), "--address", f"127.0.0.1:{port}"],
        capsys,
        out,
        f"127.0.0.1:{port}",
        "ray start --head",
    )
    assert time.monotonic() - start < 30


# ----------------------------------------------------------------------------- datasets
def _append_row(path: Path, row: str) -> None:
    text = path.read_text()
    path.write_text(text + ("" if text.endswith("\n") else "\n") + row + "\n")


def _replace_line(path: Path, line_number: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_number - 1] = new
    path.write_text("\n".join(lines) + "\n")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan_samples(path: Path) -> None:
    audio = np.zeros(16000, dtype=np.float32)
    audio[100] = np.nan
    sf.write(path, audio, 16000, subtype="FLOAT")


SYN = "metadata/train/synthetic20/soundscapes.tsv"
WEAK = "metadata/train/weak.tsv"
DATASET_CASES = {
    "missing-metadata": (lambda r: (r / "metadata/train/unlabel_in_domain.tsv").unlink(), ("unlabel_in_domain.tsv",)),
    "missing-column": (lambda r: _replace_line(r / WEAK, 1, "filename\tlabels"), ("weak.tsv",)),
    "non-numeric-time": (
        lambda r: _replace_line(r / SYN, 2, "syn_00000.wav\tsoon\t7.202\tBlender"),
        ("soundscapes.tsv", "line 2"),
    ),
    "negative-time": (
        lambda r: _replace_line(r / SYN, 2, "syn_00000.wav\t-1.0\t7.202\tBlender"),
        ("soundscapes.tsv", "line 2"),
    ),
    "onset-after-offset": (
        lambda r: _replace_line(r / SYN, 2, "syn_00000.wav\t8.0\t7.202\tBlender"),
        ("soundscapes.tsv", "line 2"),
    ),
    "event-past-clip-end": (
        lambda r: _replace_line(r / SYN, 2, "syn_00000.wav\t1.745\t12.5\tBlender"),
        ("soundscapes.tsv", "line 2"),
    ),
    "missing-audio": (lambda r: (r / "audio/train/weak/weak_00001.wav").unlink(), ("weak_00001.wav",)),
    "non-audio-wav": (lambda r: (r / "audio/train/weak/weak_00001.wav").write_text("not audio"), ("weak_00001.wav",)),
    "zero-length-wav": (lambda r: (r / "audio/train/weak/weak_00001.wav").write_bytes(b""), ("weak_00001.wav",)),
    "truncated-wav": (lambda r: _truncate(r / "audio/train/weak/weak_00001.wav"), ("weak_00001.wav",)),
    "nan-samples": (lambda r: _nan_samples(r / "audio/train/weak/weak_00001.wav"), ("weak_00001.wav",)),
    "path-escapes-root": (lambda r: _replace_line(r / WEAK, 2, "../../../etc/passwd\tCat"), ("weak.tsv", "line 2")),
    "empty-split": (lambda r: (r / WEAK).write_text("filename\tevent_labels\n"), ("weak.tsv",)),
}


@pytest.fixture()
def broken_copy(tmp_path, tiny_data_root):
    root = tmp_path / "desed"
    shutil.copytree(tiny_data_root, root)
    return root


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_bad_datasets(case, broken_copy, tmp_path, capsys):
    damage, needles = DATASET_CASES[case]
    damage(broken_copy)
    out = tmp_path / "out"
    refuse(
        [
            "--space",
            str(REPO / "tests" / "spaces" / "tiny.yaml"),
            "--out",
            str(out),
            "--data",
            str(broken_copy),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capsys,
        out,
        *needles,
    )
