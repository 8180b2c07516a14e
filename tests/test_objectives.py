"""The objective L = L_class + w(t) L_const + L_reg: equations on toy inputs."""

from __future__ import annotations

import copy
import dataclasses
import math
import random

import numpy as np
import pytest
import torch
from batches import make_batch
from torch import nn

from sed.augment.perturb import LogMelSpace
from sed.config import TrainConfig
from sed.features.scaler import Scaler
from sed.nn.model import CRNN, CRNNConfig
from sed.presets import PRESETS
from sed.training.objectives import (
    classification_loss,
    compute_losses,
    ema_alpha,
    l2_penalty,
    sigmoid_rampup,
    update_ema,
)

TINY = CRNNConfig(cnn_filters=(4, 8, 8), rnn_hidden=8, n_classes=3, dropout=0.0)
#: A dB floor and per-band scaler for `snr_noise` (the Trainer builds it from the data).
SPACE = LogMelSpace(Scaler(mean=np.full(128, -40.0), std=np.full(128, 12.0)), top_db=80.0)


def test_rampup_values():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(1000, 100) == 1.0
    assert sigmoid_rampup(7, 0) == 1.0


def test_ema_update_equation_on_a_toy_model():
    student, teacher = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        student.weight.fill_(1.0)
        student.bias.fill_(2.0)
        teacher.weight.fill_(3.0)
        teacher.bias.fill_(-1.0)
    # The reference counts the step after its increment: the first three alphas.
    assert [ema_alpha(n, 0.999) for n in (1, 2, 3)] == [0.5, pytest.approx(2 / 3), 0.75]
    assert ema_alpha(10_000, 0.999) == 0.999
    with pytest.raises(ValueError, match="counted from 1"):
        ema_alpha(0, 0.999)
    alpha = update_ema(teacher, student, 1, 0.999)  # the first update mixes half and half
    assert alpha == 0.5
    assert torch.allclose(teacher.weight, torch.full((1, 2), 2.0))  # 0.5 * 3 + 0.5 * 1
    assert torch.allclose(teacher.bias, torch.tensor([0.5]))  # 0.5 * -1 + 0.5 * 2
    with torch.no_grad():
        teacher.weight.fill_(3.0)
    alpha = update_ema(teacher, student, 3, 0.999)  # min(1 - 1/4, 0.999) = 0.75
    assert alpha == 0.75
    assert torch.allclose(teacher.weight, torch.full((1, 2), 0.75 * 3.0 + 0.25 * 1.0))
    assert ema_alpha(10**6, 0.999) == 0.999


def test_masks_select_the_right_examples():
    batch = make_batch()
    strong = torch.full((8, 157, 3), 0.5)
    weak = torch.full((8, 3), 0.5)
    strong[:6] = 0.01  # everything outside the strong part is wrong on purpose
    weak[2:] = 0.99  # everything outside the weak part is wrong on purpose
    ls, lw = classification_loss(strong, weak, batch)
    assert float(ls.detach()) == pytest.approx(math.log(2), rel=1e-5)
    assert float(lw.detach()) == pytest.approx(math.log(2), rel=1e-5)


def test_l2_term_is_coefficient_times_sum_of_squares():
    torch.manual_seed(0)
    model = CRNN(TINY)
    expected = sum(float((p.detach().double() ** 2).sum()) for p in model.parameters())
    assert float(l2_penalty(model).detach()) == pytest.approx(expected, rel=1e-5)
    cfg = dataclasses.replace(PRESETS["random-input-l2"], l2=0.01)
    terms = compute_losses(model, None, make_batch(), cfg, weight=1.0, rng=random.Random(0), input_space=SPACE)
    assert float(terms.reg.detach()) == pytest.approx(0.01 * expected, rel=1e-5)


def test_parameter_gradients_equal_the_hand_written_loss():
    """`mixup` at `rnn` with l2, one step: grads of compute_losses == grads of the loss written out."""
    torch.manual_seed(0)
    model = CRNN(TINY)
    with torch.no_grad():
        for block in model.cnn.blocks:
            block.gate.linear.weight.normal_(0.0, 0.7)
    cfg = dataclasses.replace(
        TrainConfig(), augmentation="mixup", locations="rnn", regularization="l2", l2=1e-3, mixup_alpha=0.4
    )
    batch = make_batch()
    weight = 0.7
    torch.manual_seed(5)
    terms = compute_losses(model, None, batch, cfg, weight, random.Random(0))
    model.zero_grad()
    terms.total.backward()
    grads = [p.grad.clone() for p in model.parameters()]

    # By hand: same draws (torch RNG for lambda and the permutation).
    ref = copy.deepcopy(model)
    ref.zero_grad()
    torch.manual_seed(5)
    h = ref.cnn(batch.features)
    r = ref.rnn(h)
    strong, weak = ref.heads(r)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(8)
    bce = nn.functional.binary_cross_entropy
    l_strong = bce(strong[batch.strong_mask], batch.strong_targets[batch.strong_mask])
    l_weak = bce(weak[batch.weak_mask], batch.weak_targets[batch.weak_mask])
    mixed_r = lam * r + (1 - lam) * r[perm]
    ps, pw = ref.heads(mixed_r)
    ts = (lam * strong + (1 - lam) * strong[perm]).detach()
    tw = (lam * weak + (1 - lam) * weak[perm]).detach()
    l_const = ((ps - ts) ** 2).mean() + ((pw - tw) ** 2).mean()
    l_reg = 1e-3 * sum((p**2).sum() for p in ref.parameters())
    total = l_strong + l_weak + weight * l_const + l_reg
    total.backward()
    assert float(total.detach()) == pytest.approx(float(terms.total.detach()), rel=1e-5)
    for g, p in zip(grads, ref.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-7)


def test_mean_teacher_target_comes_from_the_teacher_on_the_perturbed_input():
    torch.manual_seed(0)
    student = CRNN(TINY)
    teacher = CRNN(TINY)
    for p in teacher.parameters():
        p.requires_grad_(False)
    cfg = PRESETS["baseline"]
    batch = make_batch()
    terms = compute_losses(student, teacher, batch, cfg, weight=1.0, rng=random.Random(0), input_space=SPACE)
    terms.total.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert float(terms.const.detach()) > 0
    # no noise and identical weights -> zero consistency (dropout off in TINY, eval BN for determinism)
    teacher.load_state_dict(student.state_dict())
    student.eval()
    teacher.eval()
    quiet = dataclasses.replace(cfg, augmentation="random", noise_scale=0.0)
    terms = compute_losses(student, teacher, batch, quiet, weight=1.0, rng=random.Random(0))
    assert float(terms.const.detach()) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_gives_finite_losses_and_gradients(name):
    torch.manual_seed(0)
    cfg = PRESETS[name]
    # eq. 6 needs dropout (its gradient at d = 0 is taken on the perturbed pass's own masks)
    model = dataclasses.replace(TINY, dropout=0.5) if cfg.augmentation == "adversarial" else TINY
    student = CRNN(model)
    teacher = CRNN(model) if cfg.regularization == "mt" else None
    terms = compute_losses(student, teacher, make_batch(), cfg, weight=2.0, rng=random.Random(0), input_space=SPACE)
    terms.total.backward()
    values = terms.as_floats()
    assert all(math.isfinite(v) for v in values.values())
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
    if name == "none":
        assert values["loss_const"] == 0.0 and values["loss_reg"] == 0.0
    if cfg.regularization == "l2":
        assert values["loss_reg"] > 0
