"""The training objective `L = L_class + w(t) * L_const + L_reg` (paper 4.1-4.3).

- `L_class` (eq. 2): frame BCE on the strong (synthetic) part + clip BCE on
  the weak part (the reference; `weak_loss_on_strong=True` also puts the
  clip BCE on the strong part, as DESIGN.md describes it).
- `L_const`: MSE on frame outputs + MSE on clip outputs over the whole batch.
  * `regularization` none / l2 (eq. 5, 7, 9, 10, 12): MSE(sg[f(x)], f(x + d))
    — the clean prediction is the target (gradient stopped), the student's
    perturbed prediction is trained.
  * `regularization` mt (eq. 3 / 11): MSE(f(x), sg[f_ema(x + d)]) — the student
    sees the clean input and the EMA teacher the perturbed one, as in the
    baseline. For mixup the student side is Mixup(f(x), f(x')) and the
    teacher sees Mixup(x, x') at the chosen location.
- `w(t)` = consistency_weight x the sigmoid ramp-up `exp(-5 (1 - t)^2)`.
- `L_reg` (eq. 13): l2 x sum of squared parameters (0 unless `l2`).

`d` is built by `sed.perturb` at the configured location set.
"""

from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .config import TrainConfig
from .model import CRNN
from .perturb import (
    additive_hooks,
    adversarial_perturbation,
    consistency_mse,
    first_location,
    plan_mixup,
    random_hooks,
    vat_perturbation,
)


def sigmoid_rampup(step: int, rampup_steps: float) -> float:
    """exp(-5 (1 - t)^2), t = step / rampup_steps clipped to [0, 1] (Laine & Aila; baseline)."""
    if rampup_steps <= 0:
        return 1.0
    t = min(max(step / rampup_steps, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def ema_alpha(step: int, decay: float) -> float:
    """Baseline EMA coefficient min(1 - 1/(step + 1), decay) (eq. 1)."""
    return min(1.0 - 1.0 / (step + 1), decay)


@torch.no_grad()
def update_ema(teacher: nn.Module, student: nn.Module, step: int, decay: float) -> float:
    """teacher <- alpha * teacher + (1 - alpha) * student, parameters only (eq. 1, baseline).

    Buffers (BatchNorm running statistics) are not averaged: the teacher's
    own forward passes update them, as in the reference.
    """
    alpha = ema_alpha(step, decay)
    for t_param, s_param in zip(teacher.parameters(), student.parameters()):
        t_param.mul_(alpha).add_(s_param.detach(), alpha=1.0 - alpha)
    return alpha


def l2_penalty(model: nn.Module) -> Tensor:
    """Sum of squared parameters (eq. 13, before the coefficient)."""
    return torch.stack([p.float().pow(2).sum() for p in model.parameters() if p.requires_grad]).sum()


@dataclass
class Batch:
    """One mixed training batch; masks select each part (weak / unlabeled / strong)."""

    features: Tensor  # [B, 628, 128], normalised
    strong_targets: Tensor  # [B, 157, C]; zeros where not strong
    weak_targets: Tensor  # [B, C]; zeros where unlabeled
    strong_mask: Tensor  # [B] bool: synthetic strongly labelled clips
    weak_mask: Tensor  # [B] bool: weakly labelled clips

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in (
            self.features, self.strong_targets, self.weak_targets, self.strong_mask, self.weak_mask
        )))


@dataclass
class LossTerms:
    total: Tensor
    class_strong: Tensor
    class_weak: Tensor
    const: Tensor
    reg: Tensor
    weight: float

    def as_floats(self) -> dict[str, float]:
        """The logged terms, copied to the host in one transfer (one sync per step on a GPU)."""
        values = torch.stack([
            t.detach().float()
            for t in (self.total, self.class_strong, self.class_weak,
                      self.class_strong + self.class_weak, self.const, self.reg)
        ]).tolist()
        names = ("loss_total", "loss_class_strong", "loss_class_weak", "loss_class", "loss_const", "loss_reg")
        return dict(zip(names, values))


def _bce(probs: Tensor, targets: Tensor) -> Tensor:
    if probs.numel() == 0:
        return probs.new_zeros((), dtype=torch.float32)
    # BCE on probabilities is refused inside autocast: compute it in fp32 outside.
    with torch.autocast(probs.device.type, enabled=False):
        return nn.functional.binary_cross_entropy(probs.float(), targets.float())


def classification_loss(
    strong: Tensor, weak: Tensor, batch: Batch, weak_loss_on_strong: bool = False
) -> tuple[Tensor, Tensor]:
    """Eq. 2: frame BCE on the strong part, clip BCE on the weak part (+ strong part if asked)."""
    loss_strong = _bce(strong[batch.strong_mask], batch.strong_targets[batch.strong_mask])
    clip_mask = batch.weak_mask | batch.strong_mask if weak_loss_on_strong else batch.weak_mask
    loss_weak = _bce(weak[clip_mask], batch.weak_targets[clip_mask])
    return loss_strong, loss_weak


def _additive_hooks_for(
    model: CRNN,
    start_h: Tensor,
    start: str,
    config: TrainConfig,
    target_strong: Tensor,
    target_weak: Tensor,
) -> dict[str, Callable[[Tensor], Tensor]]:
    """Hooks adding the `random` / `adversarial` / `vat` perturbation d at every location.

    `model` from `start` (activation `start_h`) is the network whose
    sensitivity adversarial/VAT probe: the student (none, l2) or the teacher (mt).
    """
    locations = config.location_set
    if config.augmentation == "random":
        return random_hooks(locations, config.noise_scale)
    if config.augmentation == "adversarial":
        d = adversarial_perturbation(
            model, start_h, start, locations, target_strong, target_weak, config.epsilon
        )
    elif config.augmentation == "vat":
        d = vat_perturbation(
            model, start_h, start, locations, target_strong, target_weak,
            config.epsilon, config.xi, config.vat_iters,
        )
    else:  # pragma: no cover - validated in TrainConfig
        raise ValueError(config.augmentation)
    return additive_hooks(d)


def consistency_loss(
    student: CRNN,
    teacher: CRNN | None,
    x: Tensor,
    clean_strong: Tensor,
    clean_weak: Tensor,
    clean_activations: dict[str, Tensor],
    config: TrainConfig,
    rng: _random.Random,
) -> Tensor:
    """L_const for the configured augmentation, location set and regulariser."""
    if config.augmentation == "none":
        return clean_strong.new_zeros((), dtype=torch.float32)
    target_strong, target_weak = clean_strong.detach(), clean_weak.detach()
    plan = None
    if config.augmentation == "mixup":
        plan = plan_mixup(x.shape[0], config.location_set, config.mixup_alpha, x.device, rng)

    if config.regularization == "mt":
        if teacher is None:
            raise RuntimeError("regularization='mt' needs a teacher model")
        if plan is not None:
            hooks = plan.hooks()
            student_strong, student_weak = plan.mix(clean_strong), plan.mix(clean_weak)
        else:
            hooks = _additive_hooks_for(teacher, x, "input", config, target_strong, target_weak)
            student_strong, student_weak = clean_strong, clean_weak
        with torch.no_grad():
            teacher_out = teacher.run(x, hooks=hooks)
        return consistency_mse(
            student_strong, student_weak, teacher_out.strong.detach(), teacher_out.weak.detach()
        )

    if plan is not None:
        start = plan.location
        hooks = plan.hooks()
        target_strong, target_weak = plan.mix(target_strong), plan.mix(target_weak)
    else:
        start = first_location(config.location_set)
        hooks = _additive_hooks_for(
            student, clean_activations[start], start, config, target_strong, target_weak
        )
    # The prefix up to `start` is shared with the clean pass (its graph is reused),
    # so gradients of L_const reach the layers before the injection point too.
    perturbed = student.run(clean_activations[start], start=start, hooks=hooks)
    return consistency_mse(perturbed.strong, perturbed.weak, target_strong, target_weak)


def compute_losses(
    student: CRNN,
    teacher: CRNN | None,
    batch: Batch,
    config: TrainConfig,
    weight: float,
    rng: _random.Random,
) -> LossTerms:
    """All loss terms for one batch; `weight` is w(t) = consistency_weight x ramp-up."""
    clean = student.run(batch.features)
    if not bool(torch.isfinite(clean.weak).all()):
        # Diverged weights give NaN probabilities, which BCE would reject with an
        # unrelated message; say what happened instead.
        raise FloatingPointError("the model's outputs are NaN or infinite (the weights diverged)")
    loss_strong, loss_weak = classification_loss(
        clean.strong, clean.weak, batch, config.weak_loss_on_strong
    )
    if config.augmentation != "none" and config.consistency_weight > 0:
        const = consistency_loss(
            student, teacher, batch.features, clean.strong, clean.weak, clean.activations, config, rng
        )
    else:
        const = loss_strong.new_zeros(())
    if config.regularization == "l2" and config.l2 > 0:
        reg = config.l2 * l2_penalty(student)
    else:
        reg = loss_strong.new_zeros(())
    total = loss_strong + loss_weak + weight * const + reg
    return LossTerms(total=total, class_strong=loss_strong, class_weak=loss_weak, const=const, reg=reg, weight=weight)
