"""A run's state on disk: `trainer_state.pt` (resume) and `best_model.pt` (the result).

One job: the file formats. The trainer builds its state (`Trainer.state_dict`: student,
teacher, optimiser, AMP scaler, epoch, step, best model, history) and this module adds
the process-wide RNG streams (torch, CUDA, Python's global, NumPy), checks a state
before it is loaded, and writes the files atomically (temporary file + rename). They
load with `torch.load(weights_only=True)`: RNG states are stored as plain lists.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sed.constants import FRAME_STEP_S
from sed.errors import ConfigError
from sed.eval.metrics import metric_versions
from sed.features.scaler import Scaler
from sed.io import write_atomic

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "MODEL_FORMAT",
    "check_state",
    "from_json_safe",
    "global_rng_state",
    "json_safe",
    "load_checkpoint",
    "restore_global_rng",
    "save_best_model",
    "save_checkpoint",
    "scaler_entry",
]

CHECKPOINT_FILE = "trainer_state.pt"
CHECKPOINT_FORMAT = 1


def scaler_entry(scaler: Scaler) -> dict[str, torch.Tensor]:
    return {name: torch.as_tensor(getattr(scaler, name), dtype=torch.float32) for name in ("mean", "std")}


def global_rng_state() -> dict[str, Any]:
    """The process-wide RNG streams (torch, CUDA, Python's global, NumPy) as loadable values."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python_global": json_safe(random.getstate()),
        "numpy": json_safe(np.random.get_state()),
    }


def restore_global_rng(rng: Mapping[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(from_json_safe(rng["python_global"]))
    np_state = rng["numpy"]
    np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))


def check_state(state: Mapping[str, Any], labels: list[str] | tuple[str, ...], has_teacher: bool) -> None:
    """Refuse a state of another format, label set, or without the teacher the run needs."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
    if list(state["labels"]) != list(labels):
        raise ConfigError(f"checkpoint labels {state['labels']} differ from the dataset's {list(labels)}")
    if has_teacher and state["teacher"] is None:
        raise ConfigError("checkpoint has no teacher but regularization='mt' needs one")


def _write_atomically(obj: Any, path: Path) -> Path:
    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(state: dict[str, Any], directory: Path | str) -> Path:
    """Write a trainer's full state atomically to `directory/trainer_state.pt`."""
    return _write_atomically(state, Path(directory) / CHECKPOINT_FILE)


def load_checkpoint(directory: Path | str, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trainer checkpoint at {path}")
    state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    return state


#: Version of the best_model.pt layout (`sed.predict` refuses other versions).
MODEL_FORMAT = "sedtune-model-1"


def save_best_model(
    path: Path | str,
    *,
    config: dict[str, Any],
    labels: list[str],
    model: str,
    epoch: int | None,
    selection: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    scaler: Scaler,
    features: dict[str, Any],
) -> Path:
    """The selected best weights with everything needed to use them (weights_only loadable).

    Keys: ``format`` (:data:`MODEL_FORMAT`), ``config`` (the full TrainConfig:
    model widths, ``threshold``, ``median_window``, ``selection_metric``, ...),
    ``labels`` (output order), ``model`` (student/teacher), ``epoch`` (the
    selected epoch), ``selection`` (its validation scores), ``state_dict``,
    ``scaler`` (per-band mean/std tensors), ``features`` (FeatureConfig as a
    dict: sample rate, FFT, hop, mels, clip length...), ``frame_step`` (seconds
    per output frame) and ``versions`` (package versions).
    """
    scores = {k: float(v) for k, v in selection.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return _write_atomically(
        {
            "format": MODEL_FORMAT,
            "config": config,
            "labels": labels,
            "model": model,
            "epoch": epoch,
            "selection": scores,
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
            "scaler": scaler_entry(scaler),
            "features": features,
            "frame_step": FRAME_STEP_S,
            "versions": metric_versions(),
        },
        Path(path),
    )


def json_safe(value: Any) -> Any:
    """RNG states as nested lists/ints/strs (loadable with weights_only=True)."""
    if isinstance(value, (tuple, list)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def from_json_safe(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(from_json_safe(v) for v in value)
    return value
