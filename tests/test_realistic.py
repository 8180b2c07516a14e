"""Realistic augmentations (issue #16): worst-case band gains and SNR noise, and their presets."""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
import torch
from batches import make_batch
from torch import nn

from sed.augment.input_perturb import adversarial_theta, filter_family, snr_family, vat_theta
from sed.augment.perturb import LogMelSpace, consistency_mse, gradient_wrt
from sed.config import TrainConfig
from sed.features.scaler import Scaler
from sed.nn.dropout import tied_dropout
from sed.nn.model import CRNN, CRNNConfig, SEDOutput
from sed.presets import REALISTIC_PRESETS
from sed.training.objectives import Batch, compute_losses

SPACE = LogMelSpace(Scaler(mean=np.full(128, -40.0), std=np.full(128, 12.0)), top_db=80.0)
TINY = CRNNConfig(cnn_filters=(4, 8, 8), rnn_hidden=8, n_classes=3, dropout=0.0)


def features(b: int, t: int = 628, seed: int = 0) -> torch.Tensor:
    """Normalised log-mel within 60 dB of a 0 dB peak (so no floor is met by +-6 dB gains)."""
    g = torch.Generator().manual_seed(seed)
    db = -60.0 * torch.rand(b, t, 128, generator=g)
    db[:, 0, 0] = 0.0
    return SPACE.scaler.transform(db)


class LinearToy(nn.Module):
    """strong = weak = h . w (one 'class'): L_const = 2 u^2 with u = sum_f w_f offset_f / std_f."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def run(self, h, start="input", hooks=None):
        activations = {"input": h}
        if hooks and "input" in hooks:
            h = hooks["input"](h)
        strong = (h @ self.w).unsqueeze(-1)  # [B, T, 1]
        return SEDOutput(strong=strong, weak=strong.mean(dim=1), activations=activations)


def toy_problem(mode: str, seed: int = 0):
    torch.manual_seed(seed)
    model = LinearToy(torch.randn(128))
    x = features(4, t=6, seed=seed)
    with torch.no_grad():
        clean = model.run(x)
    family = filter_family(x, SPACE, 4, 6, mode, 6.0)
    layout_weights = family_weights(family, x)
    # the known answer: u = c . g with c_p = sum_f W_pf w_f / std_f; the box max of |u| is D ||c||_1
    c = torch.einsum("bpf,f->bp", layout_weights, model.w / 12.0)
    return model, x, clean, family, c


def family_weights(family, x: torch.Tensor) -> torch.Tensor:
    """Recover W from the family: the offset of unit gains (the map is linear)."""
    n = family.random().shape[1]
    db_clean = SPACE.scaler.inverse_transform(x)
    rows = []
    for p in range(n):
        gains = torch.zeros(x.shape[0], n)
        gains[:, p] = 1.0
        rows.append((SPACE.scaler.inverse_transform(family.apply(x, gains)) - db_clean)[:, 0, :])
    return torch.stack(rows, dim=1)


def toy_loss(model, x, clean, family, gains) -> torch.Tensor:
    with torch.no_grad():
        out = model.run(x, hooks=family.hooks(gains))
    return (out.strong - clean.strong).pow(2).mean(dim=(1, 2)) + (out.weak - clean.weak).pow(2).mean(dim=1)


@pytest.mark.parametrize("mode", ["step", "linear"])
def test_adversarial_gains_reach_the_box_maximum_of_a_linear_toy(mode):
    model, x, clean, family, c = toy_problem(mode)
    gains = adversarial_theta(model, x, family, clean.strong, clean.weak)
    assert torch.all(gains.abs() <= 6.0 + 1e-6)  # within the bound
    u = (c * gains).sum(dim=1)
    assert torch.allclose(u.abs(), 6.0 * c.abs().sum(dim=1), rtol=1e-4)  # the known maximum
    adversarial = toy_loss(model, x, clean, family, gains)
    assert torch.allclose(adversarial, 2 * u.pow(2), rtol=1e-3)
    # random gains of the same size: signs +-6 dB (the same L_inf and L2 norm), and uniform ones
    torch.manual_seed(1)
    for _ in range(20):
        signs = 6.0 * torch.sign(torch.randn_like(gains))
        assert torch.all(toy_loss(model, x, clean, family, signs) <= adversarial * (1 + 1e-4))
        assert torch.all(toy_loss(model, x, clean, family, family.random()) <= adversarial * (1 + 1e-4))


def test_vat_gains_are_the_dominant_direction_of_a_linear_toy():
    model, x, clean, family, c = toy_problem("step", seed=3)
    gains = vat_theta(model, x, family, clean.strong, clean.weak, xi=1e-2, iterations=2)
    # Hessian of 2 (c . g)^2 is 4 c c^T: its top eigenvector is c, scaled to max |gain| = 6 dB
    expected = 6.0 * c / c.abs().amax(dim=1, keepdim=True)
    sign = torch.sign((gains * expected).sum(dim=1, keepdim=True))
    assert torch.allclose(gains, sign * expected, atol=1e-3)


def lively_crnn(seed: int, dropout: float = 0.0) -> CRNN:
    torch.manual_seed(seed)
    model = CRNN(dataclasses.replace(TINY, dropout=dropout))
    with torch.no_grad():
        for block in model.cnn.blocks:
            block.gate.linear.weight.normal_(0.0, 0.7)
    return model


@pytest.mark.parametrize("which", ["filter", "snr"])
def test_worst_case_beats_random_of_the_same_size_on_a_crnn(which):
    losses: dict[str, list[float]] = {"adversarial": [], "random": []}
    for seed in range(3):
        model = lively_crnn(seed).eval()
        x = features(2, seed=seed)
        with torch.no_grad():
            clean = model.run(x)
        torch.manual_seed(10 + seed)
        family = filter_family(x, SPACE, 4, 6, "step", 6.0) if which == "filter" else snr_family(x, SPACE, 20.0)
        theta = adversarial_theta(model, x, family, clean.strong, clean.weak)
        if which == "filter":
            assert torch.all(theta.abs() <= 6.0 + 1e-6)
            same_size = 6.0 * torch.sign(torch.randn_like(theta))
        else:  # the SNR holds exactly: ||z_b||^2 = T per clip and band
            assert torch.allclose(theta.pow(2).sum(dim=1), torch.full((2, 128), 628.0), rtol=1e-4)
            same_size = family.scale(torch.randn_like(theta), 1.0)
        for name, value in (("adversarial", theta), ("random", same_size)):
            with torch.no_grad():
                out = model.run(x, hooks=family.hooks(value))
            losses[name].append(float(consistency_mse(out.strong, out.weak, clean.strong, clean.weak)))
    assert np.mean(losses["adversarial"]) > 1.5 * np.mean(losses["random"]), losses


def test_gain_search_uses_the_clean_pass_instance_and_leaves_params_and_bn_alone():
    model = lively_crnn(0, dropout=0.5).train()
    x = features(4)
    with tied_dropout(model):
        with torch.no_grad():
            clean = model.run(x)
        after_clean = {k: v.clone() for k, v in model.state_dict().items()}
        family = filter_family(x, SPACE, 4, 6, "linear", 6.0)
        zero = torch.zeros_like(family.random())
        # on the clean pass's masks the MSE is at its minimum at 0 dB: a zero gradient (hence the random start)
        grad = gradient_wrt(model, x, "input", {"g": zero}, lambda t: family.hooks(t["g"]), clean.strong, clean.weak)
        assert float(grad["g"].abs().max()) == 0.0
        gains = adversarial_theta(model, x, family, clean.strong, clean.weak)
        vat_theta(model, x, family, clean.strong, clean.weak, xi=1e-2)
    assert float(gains.abs().min()) == 6.0  # a non-zero gradient at the random start
    assert model.training and all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, after_clean[k]), k


def realistic_batch(b: int = 4, c: int = 3) -> Batch:
    return make_batch(b, c, features(b))


@pytest.mark.parametrize("regularization", ["l2", "mt", "none"])
@pytest.mark.parametrize("name", list(REALISTIC_PRESETS))
def test_every_realistic_augmentation_works_with_every_regulariser(name, regularization):
    cfg = dataclasses.replace(REALISTIC_PRESETS[name], regularization=regularization).validate()
    student = lively_crnn(0)
    teacher = lively_crnn(1) if regularization == "mt" else None
    torch.manual_seed(0)
    terms = compute_losses(student, teacher, realistic_batch(), cfg, 2.0, random.Random(0), input_space=SPACE)
    terms.total.backward()
    values = terms.as_floats()
    assert all(math.isfinite(v) for v in values.values())
    assert values["loss_const"] > 0
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="needs the features' dB floor and scaler"):
        compute_losses(student, teacher, realistic_batch(), cfg, 2.0, random.Random(0))


def test_adversarial_presets_perturb_more_than_their_random_counterparts():
    """Through compute_losses (l2, tied dropout): the searched gains / noise raise L_const."""

    def const(cfg: TrainConfig) -> float:
        torch.manual_seed(0)
        terms = compute_losses(lively_crnn(0), None, realistic_batch(), cfg, 1.0, random.Random(0), SPACE)
        return float(terms.const.detach())

    filter_random = const(REALISTIC_PRESETS["filter-input-l2"])
    assert const(REALISTIC_PRESETS["filter-adversarial-input-l2"]) > filter_random
    assert const(REALISTIC_PRESETS["filter-vat-input-l2"]) > filter_random
    snr = REALISTIC_PRESETS["snr-adversarial-input-l2"]
    assert const(snr) > const(dataclasses.replace(snr, augmentation="snr_noise"))


@pytest.mark.slow  # a whole training run or several processes
def test_each_realistic_preset_trains_one_epoch_on_tiny_data(tiny_data_root, session_cache):
    from sed.training.trainer import Trainer, prepare_data

    small = dict(
        cnn_filters=(4, 8, 8),
        rnn_hidden=8,
        batch_size=8,
        embedded_size="tiny",
        num_threads=1,
        max_steps_per_epoch=1,
        epochs=1,
    )
    data = None
    for name, preset in REALISTIC_PRESETS.items():
        cfg = dataclasses.replace(preset, **small).validate()
        if data is None:
            data = prepare_data(cfg, data_root=tiny_data_root, cache_dir=session_cache, progress=False)
        trainer = Trainer(cfg, data=data, progress=False)
        before = [p.detach().clone() for p in trainer.student.parameters()]
        trainer.validate = lambda: {"val_macro_f1": 0.0, "val_micro_f1": 0.0, "val_psds": None}  # not under test
        trainer.train_epoch()
        assert trainer.step == 1, name
        row = trainer.history[-1]
        assert math.isfinite(row["loss_const"]) and row["loss_const"] > 0, (name, row)
        assert any(not torch.equal(a, b) for a, b in zip(before, trainer.student.parameters())), name
    # a divergence names the chosen augmentation's own fields (read from its registry entry)
    from sed.training.trainer import TrainingDiverged

    cfg = dataclasses.replace(REALISTIC_PRESETS["filter-input-l2"], **small, filter_db=3e38).validate()
    with pytest.raises(
        TrainingDiverged,
        match=r"augmentation=filter, locations=input, filter_bands=3, "
        r"filter_min_width=6, filter_db=3e\+38, filter_mode=linear, consistency_weight",
    ):
        Trainer(cfg, data=data, progress=False).train_epoch()
