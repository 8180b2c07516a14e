"""The training objective `L = L_class + w(t) * L_const + L_reg` (paper 4.1-4.3).

- `L_class` (eq. 2): frame BCE on the strong (synthetic) part + clip BCE on
  the weak part (the reference; `weak_loss_on_strong=True` also puts the
  clip BCE on the strong part, as docs/design.md describes it).
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

`d` is built by the augmentation's entry in `sed.augment` (the paper's in `sed.augment.perturb`,
the realistic input ones in `sed.augment.input_perturb`) at the configured location set.

Which network instance each pass is (dropout masks, `sed.nn.dropout.tied_dropout`):
the clean student pass draws the step's masks. The direction search runs on the
student for every regulariser (eq. 8 defines d with f; eq. 11 only feeds x + d
to the teacher): VAT replays the clean pass's masks; adversarial (eq. 6, the
gradient at d = 0) runs on an instance of its own (new masks; on the clean
pass's instance that gradient is exactly 0), and the student's perturbed pass
then replays those masks, so d meets the instance it was found on. For the
other augmentations the student's perturbed pass replays the clean pass's masks
(`consistency_dropout='tied'`; `'independent'` draws new ones for that pass
only). With `mt` the teacher's pass on x + d has masks of its own, as in the
reference.

BatchNorm running statistics (used in evaluation) come from the clean
student passes only: the student's perturbed pass runs with them frozen
(`sed.augment.perturb.frozen_batchnorm`), because the reference never feeds a
perturbed input through the student. The teacher (`mt`) updates its own
statistics on its perturbed input, as the reference's teacher does.
"""

from __future__ import annotations

import contextlib
import math
import random as _random
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sed.augment import Augmentation, Perturbation, Probe
from sed.augment import get as get_augmentation
from sed.augment.perturb import LogMelSpace, consistency_mse, first_location, frozen_batchnorm
from sed.config import TrainConfig
from sed.nn.dropout import replay_dropout, tied_dropout, untied_dropout
from sed.nn.model import CRNN, SEDOutput
from sed.training.batches import Batch


def sigmoid_rampup(step: int, rampup_steps: float) -> float:
    """exp(-5 (1 - t)^2), t = step / rampup_steps clipped to [0, 1] (Laine & Aila; baseline)."""
    if rampup_steps <= 0:
        return 1.0
    t = min(max(step / rampup_steps, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def ema_alpha(update: int, decay: float) -> float:
    """Baseline EMA coefficient min(1 - 1/(n + 1), decay) at the n-th update, n >= 1 (eq. 1).

    The reference increments its step counter before computing alpha, so the
    first update has alpha = 1 - 1/2 = 0.5, then 2/3, 3/4, ... up to `decay`.
    """
    if update < 1:
        raise ValueError(f"EMA updates are counted from 1, got {update}")
    return min(1.0 - 1.0 / (update + 1), decay)


@torch.no_grad()
def update_ema(teacher: nn.Module, student: nn.Module, update: int, decay: float) -> float:
    """teacher <- alpha * teacher + (1 - alpha) * student, parameters only (eq. 1, baseline).

    `update` is the number of this update (1 for the first, i.e. the training
    step counted after its increment). Buffers (BatchNorm running statistics)
    are not averaged: the teacher's own forward passes update them, as in the
    reference.
    """
    alpha = ema_alpha(update, decay)
    for t_param, s_param in zip(teacher.parameters(), student.parameters()):
        t_param.mul_(alpha).add_(s_param.detach(), alpha=1.0 - alpha)
    return alpha


def l2_penalty(model: nn.Module) -> Tensor:
    """Sum of squared parameters (eq. 13, before the coefficient)."""
    return torch.stack([p.float().pow(2).sum() for p in model.parameters() if p.requires_grad]).sum()


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
        values = torch.stack(
            [
                t.detach().float()
                for t in (
                    self.total,
                    self.class_strong,
                    self.class_weak,
                    self.class_strong + self.class_weak,
                    self.const,
                    self.reg,
                )
            ]
        ).tolist()
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


def _build(augmentation: Augmentation, probe: Probe, config: TrainConfig) -> Perturbation:
    if augmentation.needs_input_space and probe.input_space is None:
        raise ValueError(
            f"augmentation={augmentation.name!r} needs the features' dB floor and scaler "
            "(compute_losses(..., input_space=LogMelSpace(...)); the Trainer passes it)"
        )
    assert augmentation.build is not None
    return augmentation.build(probe, config)


def consistency_loss(
    student: CRNN,
    teacher: CRNN | None,
    x: Tensor,
    clean_strong: Tensor,
    clean_weak: Tensor,
    clean_activations: dict[str, Tensor],
    config: TrainConfig,
    rng: _random.Random,
    input_space: LogMelSpace | None = None,
) -> Tensor:
    """L_const for the configured augmentation, location set and regulariser.

    The perturbation comes from the augmentation's registry entry
    (`sed.augment`): its hooks, where the perturbed pass starts, and
    the map of the target (mixup). Call it inside the `tied_dropout(student)`
    scope of the clean pass (as `compute_losses` does): the direction search
    and the perturbed pass then see the clean pass's network instance
    (adversarial: its own, module docstring).
    """
    augmentation = get_augmentation(config.augmentation)
    if not augmentation.perturbs:
        return clean_strong.new_zeros((), dtype=torch.float32)
    target_strong, target_weak = clean_strong.detach(), clean_weak.detach()
    locations = config.location_set
    # d is found on the student f for every regulariser (eq. 5-10 define it with f;
    # eq. 11 only changes who is fed x + d).
    start = first_location(locations)
    probe = Probe(
        student,
        start,
        clean_activations[start],
        target_strong,
        target_weak,
        clean_activations,
        locations,
        rng,
        input_space,
    )
    perturbation = _build(augmentation, probe, config)

    if config.regularization == "mt":
        if teacher is None:
            raise RuntimeError("regularization='mt' needs a teacher model")
        # eq. 11: the teacher (masks of its own, as in the reference) is fed x + d
        student_strong, student_weak = perturbation.mixed(clean_strong), perturbation.mixed(clean_weak)
        with torch.no_grad():
            teacher_out = teacher.run(x, hooks=perturbation.hooks)
        return consistency_mse(student_strong, student_weak, teacher_out.strong.detach(), teacher_out.weak.detach())

    start = perturbation.start or start
    target_strong, target_weak = perturbation.mixed(target_strong), perturbation.mixed(target_weak)
    # The prefix up to `start` is shared with the clean pass (its graph is reused),
    # so gradients of L_const reach the layers before the injection point too.
    # BatchNorm statistics stay those of the clean passes (module docstring).
    if perturbation.dropout_tape is not None:  # adversarial: the instance d was found on
        masks: contextlib.AbstractContextManager[object] = replay_dropout(student, perturbation.dropout_tape)
    else:
        masks = untied_dropout(student, enabled=config.consistency_dropout == "independent")
    with masks, frozen_batchnorm(student):
        perturbed = student.run(clean_activations[start], start=start, hooks=perturbation.hooks)
    return consistency_mse(perturbed.strong, perturbed.weak, target_strong, target_weak)


def objective_rest(
    student: CRNN,
    teacher: CRNN | None,
    x: Tensor,
    clean: SEDOutput,
    classification: tuple[Tensor, Tensor],
    config: TrainConfig,
    weight: Tensor | float,
    rng: _random.Random,
    input_space: LogMelSpace | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(L_const, L_reg, L) after the clean pass `clean` and its classification terms
    (strong, weak): the rest of `L = L_class + w(t) L_const + L_reg`, shared by `compute_losses`
    and the CUDA-graph step (`sed.training.fast_step`). Call it inside the clean pass's
    `tied_dropout(student)` scope; `weight` may be a device scalar."""
    loss_strong, loss_weak = classification
    with_const = get_augmentation(config.augmentation).perturbs and config.consistency_weight > 0
    if with_const:
        const = consistency_loss(
            student, teacher, x, clean.strong, clean.weak, clean.activations, config, rng, input_space
        )
    else:
        const = loss_strong.new_zeros(())
    if config.regularization == "l2" and config.l2 > 0:
        reg = config.l2 * l2_penalty(student)
    else:
        reg = loss_strong.new_zeros(())
    return const, reg, loss_strong + loss_weak + weight * const + reg


def compute_losses(
    student: CRNN,
    teacher: CRNN | None,
    batch: Batch,
    config: TrainConfig,
    weight: float,
    rng: _random.Random,
    input_space: LogMelSpace | None = None,
) -> LossTerms:
    """All loss terms for one batch; `weight` is w(t) = consistency_weight x ramp-up.

    `input_space` (the features' dB floor and scaler) is needed by the input
    augmentations that go through the linear mel (`needs_input_space`).
    """
    with_const = get_augmentation(config.augmentation).perturbs and config.consistency_weight > 0
    # the step's network instance is the clean pass's (module docstring).
    with tied_dropout(student, enabled=with_const):
        clean = student.run(batch.features)
        if not bool(torch.isfinite(clean.weak).all()):
            # Diverged weights give NaN probabilities, which BCE would reject with an
            # unrelated message; say what happened instead.
            raise FloatingPointError("the model's outputs are NaN or infinite (the weights diverged)")
        loss_strong, loss_weak = classification_loss(clean.strong, clean.weak, batch, config.weak_loss_on_strong)
        const, reg, total = objective_rest(
            student, teacher, batch.features, clean, (loss_strong, loss_weak), config, weight, rng, input_space
        )
        return LossTerms(
            total=total, class_strong=loss_strong, class_weak=loss_weak, const=const, reg=reg, weight=weight
        )
