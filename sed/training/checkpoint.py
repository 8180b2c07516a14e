"""A run's complete state on disk: `trainer_state.pt` (resume) and `best_model.pt` (the result).

One job: serialise and restore everything that makes a resumed run continue
exactly as if it had not stopped -- student, teacher, optimiser, AMP scaler,
every RNG stream (torch, CUDA, Python's global and the run's own, NumPy, the
batch samplers), epoch, step, best model and history -- and write the
selected best weights with what is needed to use them. Files are written
atomically (temporary file + rename) and load with
`torch.load(weights_only=True)`: RNG states are stored as plain lists.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # the trainer imports this module
    from sed.training.trainer import Trainer

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "load_checkpoint",
    "restore",
    "save_best_model",
    "save_checkpoint",
    "snapshot",
]

CHECKPOINT_FILE = "trainer_state.pt"
CHECKPOINT_FORMAT = 1


def _scaler_entry(trainer: Trainer) -> dict[str, torch.Tensor]:
    scaler = trainer.data.scaler
    return {name: torch.as_tensor(getattr(scaler, name), dtype=torch.float32) for name in ("mean", "std")}


def snapshot(trainer: Trainer) -> dict[str, Any]:
    """The full state of `trainer` as a `weights_only`-loadable dict."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": trainer.config.to_dict(),
        "labels": list(trainer.labels),
        "epoch": trainer.epoch,
        "step": trainer.step,
        "student": trainer.student.state_dict(),
        "teacher": None if trainer.teacher is None else trainer.teacher.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "grad_scaler": trainer.grad_scaler.state_dict(),
        "best_epoch": trainer.best_epoch,
        "best_metrics": dict(trainer.best_metrics),
        "best_state": trainer.best_state,
        "history": list(trainer.history),
        "scaler": _scaler_entry(trainer),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_global": _json_safe(random.getstate()),
            "python_trainer": _json_safe(trainer.rng.getstate()),
            "numpy": _json_safe(np.random.get_state()),
            "samplers": trainer.batches.generator_states(),
        },
    }


def restore(trainer: Trainer, state: dict[str, Any]) -> None:
    """Put `trainer` back into the state `snapshot` took (refusing another format or label set)."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
    if list(state["labels"]) != list(trainer.labels):
        raise ValueError(f"checkpoint labels {state['labels']} differ from the dataset's {list(trainer.labels)}")
    trainer.student.load_state_dict(state["student"])
    if trainer.teacher is not None:
        if state["teacher"] is None:
            raise ValueError("checkpoint has no teacher but regularization='mt' needs one")
        trainer.teacher.load_state_dict(state["teacher"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.grad_scaler.load_state_dict(state["grad_scaler"])
    trainer.epoch = int(state["epoch"])
    trainer.step = int(state["step"])
    trainer.best_epoch = state["best_epoch"]
    trainer.best_metrics = dict(state["best_metrics"])
    trainer.best_state = state["best_state"]
    trainer.history = list(state["history"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(_from_json_safe(rng["python_global"]))
    trainer.rng.setstate(_from_json_safe(rng["python_trainer"]))
    np_state = rng["numpy"]
    np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
    trainer.batches.load_generator_states(rng["samplers"])


def _write_atomically(obj: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def save_checkpoint(trainer: Trainer, directory: Path | str) -> Path:
    """Write the full state atomically to `directory/trainer_state.pt`."""
    return _write_atomically(snapshot(trainer), Path(directory) / CHECKPOINT_FILE)


def load_checkpoint(trainer: Trainer, directory: Path | str) -> None:
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trainer checkpoint at {path}")
    restore(trainer, torch.load(path, map_location=trainer.device, weights_only=True))


#: Version of the best_model.pt layout (`sed.predict` refuses other versions).
MODEL_FORMAT = "sedtune-model-1"


def save_best_model(trainer: Trainer, path: Path | str) -> Path:
    """The selected best weights with everything needed to use them (weights_only loadable).

    Keys: ``format`` (:data:`MODEL_FORMAT`), ``config`` (the full TrainConfig:
    model widths, ``threshold``, ``median_window``, ``selection_metric``, ...),
    ``labels`` (output order), ``model`` (student/teacher), ``epoch`` (the
    selected epoch), ``selection`` (its validation scores), ``state_dict``,
    ``scaler`` (per-band mean/std tensors), ``features`` (FeatureConfig as a
    dict: sample rate, FFT, hop, mels, clip length...), ``frame_step`` (seconds
    per output frame) and ``versions`` (package versions).
    """
    from sed.constants import FRAME_STEP_S
    from sed.eval.metrics import metric_versions

    state = trainer.best_state if trainer.best_state is not None else trainer.selected_model().state_dict()
    selection = {
        k: float(v) for k, v in trainer.best_metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return _write_atomically(
        {
            "format": MODEL_FORMAT,
            "config": trainer.config.to_dict(),
            "labels": list(trainer.labels),
            "model": trainer.config.select,
            "epoch": trainer.best_epoch,
            "selection": selection,
            "state_dict": {k: v.detach().cpu() for k, v in state.items()},
            "scaler": _scaler_entry(trainer),
            "features": trainer.data.feature_config.to_dict(),
            "frame_step": FRAME_STEP_S,
            "versions": metric_versions(),
        },
        Path(path),
    )


def _json_safe(value: Any) -> Any:
    """RNG states as nested lists/ints/strs (loadable with weights_only=True)."""
    if isinstance(value, (tuple, list)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _from_json_safe(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_json_safe(v) for v in value)
    return value
