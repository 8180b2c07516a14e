"""One optimisation step, eager or as a CUDA graph, and the divergence check both share.

The Trainer (`sed.training.trainer`) owns the models, the optimizer and the step count; this
module does the work of a step: `eager_step` (the CPU path, and the GPU path with
`fast_step=off`) computes the losses (`sed.training.objectives`), checks them, steps Adam with
the ramped learning rate and updates the EMA teacher; `graph_epoch` replays the CUDA-graph step
(`sed.training.fast_step`) over an epoch and checks the loss terms it read back at the end.
A NaN or infinite loss raises `TrainingDiverged`, naming the step and the loss terms.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from sed.augment import get as get_augmentation
from sed.augment.perturb import LogMelSpace
from sed.config import TrainConfig
from sed.nn.model import CRNN
from sed.training.batches import Batch
from sed.training.fast_step import LOSS_NAMES, FastStep
from sed.training.objectives import compute_losses, sigmoid_rampup, update_ema


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and terms."""


def diverged_message(
    cfg: TrainConfig, epoch: int, step: int, values: dict[str, float], bad: list[str], reason: str
) -> str:
    return (
        f"loss became non-finite at epoch {epoch}, step {step} "
        f"({', '.join(f'{k}={values[k]}' for k in bad)}{'; ' + reason if reason else ''}); "
        f"config: augmentation={cfg.augmentation}, locations={cfg.locations}, "
        + "".join(f"{name}={getattr(cfg, name)}, " for name in get_augmentation(cfg.augmentation).field_names)
        + f"consistency_weight={cfg.consistency_weight}, "
        f"lr={cfg.lr}. Lower the perturbation strength or the learning rate."
    )


def check_finite(cfg: TrainConfig, epoch: int, step: int, values: dict[str, float], reason: str = "") -> None:
    """Raise TrainingDiverged if a loss term is NaN or infinite (`epoch` is the one being trained)."""
    bad = [k for k, v in values.items() if not np.isfinite(v)]
    if bad:
        raise TrainingDiverged(diverged_message(cfg, epoch, step, values, bad, reason))


def eager_step(
    cfg: TrainConfig,
    models: tuple[CRNN, CRNN | None],
    optimizer: torch.optim.Optimizer,
    grad_scaler: torch.amp.GradScaler,
    batch: Batch,
    position: tuple[int, int, float],
    rng: random.Random,
    input_space: LogMelSpace,
    amp: tuple[str, torch.dtype],
) -> tuple[dict[str, float], float]:
    """One step at `position` = (epoch being trained, step, ramp-up steps); returns the loss terms
    and the ramp-up value. The caller counts the step."""
    student, teacher = models
    epoch, step, rampup_steps = position
    rampup = sigmoid_rampup(step, rampup_steps)
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * rampup
    try:
        with torch.autocast(amp[0], dtype=amp[1], enabled=cfg.amp):
            weight = cfg.consistency_weight * rampup
            terms = compute_losses(student, teacher, batch, cfg, weight, rng, input_space)
        values = terms.as_floats()
    except FloatingPointError as error:
        values, reason = {"model_outputs": float("nan")}, str(error)
    else:
        reason = ""
    check_finite(cfg, epoch, step, values, reason)
    optimizer.zero_grad(set_to_none=True)
    grad_scaler.scale(terms.total).backward()
    grad_scaler.step(optimizer)
    grad_scaler.update()
    if teacher is not None:
        # the (step + 1)-th update: alpha 0.5 first, as the reference (objectives.ema_alpha)
        update_ema(teacher, student, step + 1, cfg.ema_decay)
    return values, rampup


def graph_epoch(
    cfg: TrainConfig,
    fast: FastStep,
    batches: Iterable[Batch],
    position: tuple[int, int, float],
    on_step: Callable[[int, dict[str, float]], Any],
) -> tuple[int, float]:
    """An epoch of CUDA-graph steps from `position` = (epoch being trained, first step, ramp-up
    steps); the loss terms are read once, at its end, checked, and given to `on_step(step after,
    values)` in order. Returns the steps run and the last ramp-up value."""
    epoch, first, rampup_steps = position
    fast.set_step(first)
    n_steps = 0
    for batch in batches:
        fast.step(batch)
        n_steps += 1
    for i, row in enumerate(fast.read_history(n_steps)):
        values = dict(zip(LOSS_NAMES, (float(v) for v in row)))
        check_finite(cfg, epoch, first + i, values)
        on_step(first + i + 1, values)
    return n_steps, sigmoid_rampup(max(first + n_steps - 1, 0), rampup_steps)
