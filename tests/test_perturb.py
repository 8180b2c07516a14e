"""Perturbations of the paper's section 4.2 on tiny models and toy problems."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from sed.augment.families import adversarial_perturbation, vat_perturbation
from sed.augment.perturb import (
    MixupPlan,
    additive_hooks,
    consistency_mse,
    frozen_batchnorm,
    per_example_norm,
    plan_mixup,
    power_iteration,
    random_noise,
)
from sed.nn.model import CRNN, CRNNConfig, SEDOutput

TINY = CRNNConfig(cnn_filters=(4, 8, 8), rnn_hidden=8, n_classes=3, dropout=0.0)


def lively(model: CRNN) -> CRNN:
    """The reference init (gated-unit maps N(0, 0.01)) makes CNN outputs ~1e-7 at step 0;
    give the toy models trained-like magnitudes so perturbations have visible effects."""
    with torch.no_grad():
        for block in model.cnn.blocks:
            block.gate.linear.weight.normal_(0.0, 0.7)
    return model


def tiny_model(seed: int = 0) -> CRNN:
    torch.manual_seed(seed)
    return lively(CRNN(TINY))


def test_random_noise_has_the_requested_relative_norm_per_example():
    torch.manual_seed(0)
    h = torch.randn(5, 7, 11) * torch.arange(1, 6).view(5, 1, 1)
    d = random_noise(h, 0.3)
    ratio = (per_example_norm(d) / per_example_norm(h)).flatten()
    assert torch.allclose(ratio, torch.full((5,), 0.3), atol=1e-6)


@pytest.mark.parametrize("location", ["input", "cnn", "rnn"])
def test_adversarial_and_vat_beat_random_directions_of_the_same_norm(location):
    gains = {"adversarial": [], "vat": [], "random": []}
    for seed in range(3):
        model = tiny_model(seed).eval()
        torch.manual_seed(100 + seed)
        x = torch.randn(2, 628, 128)
        with torch.no_grad():
            clean = model.run(x)
        start_h = clean.activations[location]
        ts, tw = clean.strong, clean.weak
        eps = 0.5
        dirs = {
            "adversarial": adversarial_perturbation(model, start_h, location, [location], ts, tw, eps),
            "vat": vat_perturbation(model, start_h, location, [location], ts, tw, eps, xi=1e-2, iterations=2),
            "random": {location: random_noise(start_h, eps)},
        }
        for name, d in dirs.items():
            assert torch.allclose(
                per_example_norm(d[location]) / per_example_norm(start_h), torch.tensor(eps), atol=1e-4
            )
            with torch.no_grad():
                out = model.run(start_h, start=location, hooks=additive_hooks(d))
            gains[name].append(float(consistency_mse(out.strong, out.weak, ts, tw)))
    mean = {k: sum(v) / len(v) for k, v in gains.items()}
    assert mean["adversarial"] > mean["random"]
    assert mean["vat"] > mean["random"]


class QuadraticToy(nn.Module):
    """f_l(h) = A h as 'strong' output; MSE(f(h), f(h+d)) = ||A d||^2 / n: Hessian ~ A^T A."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = a

    def run(self, h, start="input", hooks=None):
        activations = {"input": h}
        if hooks and "input" in hooks:
            h = hooks["input"](h)
        strong = (h @ self.a.T).unsqueeze(1)  # [B, 1, m]
        weak = torch.zeros(h.shape[0], 1)
        return SEDOutput(strong=strong, weak=weak, activations=activations)


def test_vat_power_iteration_finds_the_dominant_eigenvector_of_a_quadratic():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    eigen = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    a = torch.diag(eigen.sqrt()) @ q.T  # A^T A = Q diag(eigen) Q^T, top eigenvector q[:, 0]
    model = QuadraticToy(a)
    h = torch.randn(1, 6)
    with torch.no_grad():
        clean = model.run(h)
    d = vat_perturbation(model, h, "input", ["input"], clean.strong, clean.weak, epsilon=1.0, xi=1e-3, iterations=20)
    direction = d["input"][0] / d["input"][0].norm()
    assert abs(float(direction @ q[:, 0])) > 0.999
    # and the generic helper agrees
    v = power_iteration(lambda v: a.T @ (a @ v), torch.randn(6), 50)
    assert abs(float(v @ q[:, 0])) > 0.999


def test_direction_search_leaves_params_bn_stats_and_mode_alone():
    torch.manual_seed(0)
    model = lively(CRNN(CRNNConfig(cnn_filters=(4, 8, 8), rnn_hidden=8, n_classes=3))).train()
    x = torch.randn(4, 628, 128)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        clean = model.run(x)
    after_clean = {k: v.clone() for k, v in model.state_dict().items()}
    vat_perturbation(model, x, "input", ["input", "cnn"], clean.strong, clean.weak, 0.1, 1e-3, 2)
    adversarial_perturbation(model, x, "input", ["input", "rnn"], clean.strong, clean.weak, 0.1)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, after_clean[k]), k
    # the clean training pass itself did update BN running stats (so the check above means something)
    assert not torch.equal(before["cnn.blocks.0.bn.running_mean"], after_clean["cnn.blocks.0.bn.running_mean"])
    model.eval()
    vat_perturbation(model, x, "input", ["input"], clean.strong, clean.weak, 0.1, 1e-3, 1)
    assert not model.training


def test_frozen_batchnorm_restores_momentum():
    model = tiny_model()
    with frozen_batchnorm(model):
        assert all(m.momentum == 0.0 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(m.momentum == 0.99 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_perturbing_cnn_changes_only_what_follows():
    model = tiny_model().eval()
    x = torch.randn(2, 628, 128)
    x_copy = x.clone()
    with torch.no_grad():
        clean = model.run(x)
        d = random_noise(clean.activations["cnn"], 0.2)
        pert = model.run(x, hooks=additive_hooks({"cnn": d}))
    assert torch.equal(x, x_copy)
    assert torch.equal(pert.activations["cnn"], clean.activations["cnn"])  # before the hook
    assert not torch.allclose(pert.activations["rnn"], clean.activations["rnn"])
    assert not torch.allclose(pert.strong, clean.strong)


def test_mixup_target_is_the_mix_of_clean_predictions():
    plan = MixupPlan(location="rnn", lam=0.3, permutation=torch.tensor([2, 0, 1]))
    clean = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    mixed = plan.mix(clean)
    expected = 0.3 * clean + 0.7 * clean[[2, 0, 1]]
    assert torch.allclose(mixed, expected)
    assert torch.allclose(mixed[0], torch.tensor([0.3 + 0.35, 0.35]))
    rng = random.Random(0)
    chosen = {plan_mixup(4, ["cnn", "rnn"], 0.2, torch.device("cpu"), rng).location for _ in range(40)}
    assert chosen == {"cnn", "rnn"}
    lams = [plan_mixup(4, ["cnn"], 0.2, torch.device("cpu"), rng).lam for _ in range(200)]
    assert all(0.0 <= lam <= 1.0 for lam in lams)
    # Beta(0.2, 0.2) is U-shaped: most draws near 0 or 1
    assert sum(lam < 0.1 or lam > 0.9 for lam in lams) > 100
