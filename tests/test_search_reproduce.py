"""search.reproduce (the `command` column) and search.run's --set / --space - (no Ray, no training).

The end-to-end check -- a command run on tiny data gives the trial's
validation metric -- is in tests/test_search_study.py (it reuses that
file's one tiny search).
"""

from __future__ import annotations

import io
import shlex
import sys
from pathlib import Path

import pytest

from search.reproduce import TrainCommand
from search.settings import UsageError, build_parser, resolve_settings
from search.space import load_space
from sed.config import TrainConfig, apply_overrides, parse_set_arguments
from sed.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "tests" / "spaces" / "tiny.yaml"


def _sets(command: str) -> dict[str, str]:
    argv = shlex.split(command)
    return parse_set_arguments([argv[i + 1] for i, a in enumerate(argv) if a == "--set"])


def test_command_reads_back_to_the_trial_config() -> None:
    space = load_space(SPACE)
    trial = {
        **space.constants(),
        "augmentation": "vat",
        "locations": "latent",
        "epsilon": 0.123456789012345,
        "consistency_weight": 1 / 3,
        "seed": 7,
        "_config_id": "abc",
        "_label": "x",
    }
    make = TrainCommand(data="/data/DESED", cache_dir="/cache", runtime={"num_threads": 2})
    command = make(trial)
    argv = shlex.split(command)
    assert argv[:5] == ["python", "-m", "sed.train", "--preset", "baseline"]
    assert argv[argv.index("--data") + 1] == "/data/DESED" and argv[argv.index("--cache-dir") + 1] == "/cache"
    assert argv[argv.index("--out") + 1] == "results/reproduce/abc-seed7"
    rebuilt = apply_overrides(PRESETS["baseline"], {**_sets(command), "data": "/data/DESED"})
    expected = apply_overrides(
        TrainConfig(), {"num_threads": 2, **{k: v for k, v in trial.items() if not k.startswith("_")}}
    )
    assert rebuilt == apply_overrides(expected, {"data": "/data/DESED"})
    assert _sets(command)["epsilon"] == "0.123456789012345" and _sets(command)["num_threads"] == "2"


def test_set_and_space_from_stdin(tmp_path: Path, monkeypatch) -> None:
    out = str(tmp_path / "out")
    monkeypatch.setattr(sys, "stdin", io.StringIO(SPACE.read_text()))
    args = build_parser().parse_args(
        ["--space", "-", "--set", "rnn_hidden=16", "--set", "device=cpu", "--out", out, "--name", "from-stdin"]
    )
    settings, space, exp_dir = resolve_settings(args)
    assert space.fixed["rnn_hidden"] == 16 and space.base_config().rnn_hidden == 16
    assert exp_dir.name == "from-stdin" and "rnn_hidden: 16" in settings.space_text  # what --resume reruns
    with pytest.raises(UsageError, match="augmentation is searched"):
        resolve_settings(build_parser().parse_args(["--space", str(SPACE), "--set", "augmentation=vat", "--out", out]))
    with pytest.raises(UsageError, match="--set would change the experiment"):
        resolve_settings(build_parser().parse_args(["--resume", "--name", "x", "--set", "rnn_hidden=4", "--out", out]))
