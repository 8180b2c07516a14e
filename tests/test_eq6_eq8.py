"""Eq. 6 and eq. 8 as the paper writes them (issue #21; docs/faithfulness.md).

- adversarial (eq. 6) is the gradient at d = 0, one gradient pass, on the perturbed
  pass's own dropout instance: a different method from VAT (eq. 8, a power iteration
  on the clean pass's instance), whatever VAT's probe radius;
- VAT's d is found on the student f under every regulariser: under the mean teacher
  (eq. 11) only who is fed x + d changes.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from batches import make_batch

import sed.augment.paper as paper
from sed.augment.families import adversarial_perturbation, vat_perturbation
from sed.config import TrainConfig
from sed.errors import ConfigError
from sed.nn.dropout import tied_dropout
from sed.nn.model import CRNN, CRNNConfig
from sed.presets import PRESETS
from sed.training.objectives import compute_losses

NARROW = dict(cnn_filters=(8, 16, 16, 16, 16, 16, 16), rnn_hidden=16, n_classes=10)
EPSILON = 0.1


def narrow_model(seed: int, dropout: float = 0.5) -> CRNN:
    torch.manual_seed(seed)
    return CRNN(CRNNConfig(**NARROW, dropout=dropout)).train()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1).abs().mean().item()


def adversarial_vs_vat(location: str, seed: int, xi: float) -> tuple[float, float]:
    """Mean |cosine| and ||difference|| / ||VAT|| between adversarial and 1-iteration VAT, same RNG state."""
    model = narrow_model(seed)
    x = torch.randn(4, 628, 128)
    with tied_dropout(model):
        with torch.no_grad():
            clean = model.run(x)
        h = clean.activations[location]
        args = (model, h, location, [location], clean.strong, clean.weak, EPSILON)
        state = torch.get_rng_state()
        adversarial = adversarial_perturbation(*args, activations=clean.activations).d[location]
        torch.set_rng_state(state)
        vat = vat_perturbation(*args, xi, 1, activations=clean.activations)[location]
    return cosine(adversarial, vat), float((adversarial - vat).norm() / vat.norm())


@pytest.mark.parametrize("location", ["input", "cnn", "rnn"])
def test_adversarial_is_not_vat_at_any_probe_radius(location):
    for xi in (1e-3, 1e-2, EPSILON, 1.0):
        results = [adversarial_vs_vat(location, seed, xi) for seed in range(2)]
        mean_cos = sum(c for c, _ in results) / len(results)
        # before issue #21 adversarial was VAT(1 iteration, xi = epsilon): cosine 1, difference 0.0
        assert mean_cos < 0.9, (location, xi, mean_cos)
        assert all(diff > 0.3 for _, diff in results), (location, xi, results)


def count_gradient_passes(monkeypatch, run) -> int:
    calls = []
    grad = torch.autograd.grad

    def counting(*args, **kwargs):
        calls.append(1)
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    run()
    monkeypatch.setattr(torch.autograd, "grad", grad)
    return len(calls)


def test_adversarial_costs_one_gradient_pass_vat_one_per_power_iteration(monkeypatch):
    model = narrow_model(0)
    x = torch.randn(2, 628, 128)
    with tied_dropout(model):
        with torch.no_grad():
            clean = model.run(x)
        args = (model, x, "input", ["input", "cnn"], clean.strong, clean.weak, EPSILON)
        assert count_gradient_passes(monkeypatch, lambda: adversarial_perturbation(*args, clean.activations)) == 1
        for iterations in (1, 3):
            run = lambda: vat_perturbation(*args, 1e-3, iterations, clean.activations)  # noqa: E731
            assert count_gradient_passes(monkeypatch, run) == iterations


def test_adversarial_at_rnn_runs_its_own_instance_from_the_input_and_refuses_dropout_0():
    model = narrow_model(0)
    x = torch.randn(2, 628, 128)
    with tied_dropout(model):
        with torch.no_grad():
            clean = model.run(x)
        found = adversarial_perturbation(
            model, clean.activations["rnn"], "rnn", ["rnn"], clean.strong, clean.weak, EPSILON, clean.activations
        )
    # no dropout follows the RNN output: the instance differs upstream, so the pass starts at the input
    assert found.start == "input" and float(found.d["rnn"].abs().max()) > 0
    with pytest.raises(ConfigError, match="augmentation=adversarial needs dropout > 0"):
        TrainConfig(augmentation="adversarial", locations="cnn", dropout=0.0).validate()


def vat_direction(monkeypatch, cfg: TrainConfig) -> dict:
    """One step of `cfg` on the same student, masks and seed; the d its VAT search returned."""
    seen = []
    search = paper.vat_perturbation

    def recording(model, *args, **kwargs):
        d = search(model, *args, **kwargs)
        seen.append((model, d))
        return d

    monkeypatch.setattr(paper, "vat_perturbation", recording)
    student = narrow_model(0)
    teacher = narrow_model(1) if cfg.has_teacher else None
    torch.manual_seed(5)
    compute_losses(student, teacher, make_batch(c=10), cfg, 1.0, random.Random(0))
    monkeypatch.setattr(paper, "vat_perturbation", search)
    assert len(seen) == 1 and seen[0][0] is student  # searched on the student, also under mt
    return seen[0][1]


@pytest.mark.parametrize("preset", ["vat-input-mt", "vat-latent-l2"])
def test_vat_under_mean_teacher_finds_d_on_the_student_as_under_l2(monkeypatch, preset):
    cfg = PRESETS[preset]
    under_l2 = vat_direction(monkeypatch, dataclasses.replace(cfg, regularization="l2"))
    under_mt = vat_direction(monkeypatch, dataclasses.replace(cfg, regularization="mt"))
    assert under_l2.keys() == under_mt.keys()
    for loc in under_l2:
        assert torch.equal(under_l2[loc], under_mt[loc]), loc
