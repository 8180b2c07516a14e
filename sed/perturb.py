"""Perturbations `d` of the paper's section 4.2, at any injection point.

Notation: `h` is the activation at a location, `f_l` the network from there
on (`CRNN.run(h, start=loc, hooks=...)`). Norms are per example (over every
axis but the batch) and sizes are relative to `||h||`, so one value means the
same at the input, the CNN output and the RNN output (DESIGN.md).

- `random` (eq. 5): d ~ N(0, I), rescaled so ||d|| = noise_scale * ||h||.
- `adversarial` (eq. 6-7): the gradient of MSE(sg[f(x)], f_l(h + d)) is zero at
  d = 0 (the MSE has its minimum there), so it is taken at a random start d0
  drawn as `random` with ||d0|| = epsilon * ||h|| (a random point of the
  epsilon sphere, as in FGSM with random start); then one first-order step
  d = epsilon * ||h|| * g / ||g||.
- `vat` (eq. 8-9): `vat_iters` power iterations from a random unit direction r:
  g = grad_d MSE(sg[f(x)], f_l(h + xi * ||h|| * r)), r <- g / ||g||; then
  d = epsilon * ||h|| * r. For small xi this is the dominant eigenvector of
  the Hessian of the MSE at d = 0 (Miyato et al., VAT), i.e. the direction
  that increases the MSE fastest inside the ball.
- `mixup` (eq. 10): lambda ~ Beta(alpha, alpha), h <- lambda h + (1 - lambda)
  h[perm]; the target is the same mix of the clean predictions. With several
  locations one is drawn uniformly per step (manifold mixup, Verma et al.
  2019): mixing twice would mix already-mixed activations.

With several locations (e.g. `latent` = cnn + rnn), `random`, `adversarial`
and `vat` perturb all of them in one pass; adversarial/VAT directions are
found jointly (one gradient w.r.t. every d), each normalised by its own ||h||.

The gradient passes that search adversarial/VAT directions use
`torch.autograd.grad` w.r.t. `d` only (nothing reaches parameter `.grad`),
run with BatchNorm running statistics frozen (`frozen_batchnorm`), and keep the
model in the train/eval mode it was in.
"""

from __future__ import annotations

import contextlib
import random as _random
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from .config import LOCATIONS
from .model import CRNN

_EPS = 1e-12


def per_example_norm(x: Tensor) -> Tensor:
    """||x|| over every axis but the first, shaped to broadcast against x."""
    flat = x.reshape(x.shape[0], -1)
    return flat.norm(dim=1).reshape((-1,) + (1,) * (x.dim() - 1))


def scale_to(direction: Tensor, reference: Tensor, relative: float) -> Tensor:
    """Rescale `direction` so that ||d|| = relative * ||reference|| per example."""
    return direction * (relative * per_example_norm(reference) / (per_example_norm(direction) + _EPS))


@contextlib.contextmanager
def frozen_batchnorm(model: nn.Module) -> Iterator[None]:
    """Train-mode BatchNorm without updating its running statistics.

    momentum 0 makes `running = (1 - 0) * running + 0 * batch`; the batch
    counter is restored too. Normalisation still uses the batch statistics,
    as in the training pass whose behaviour the direction search probes.
    """
    saved: list[tuple[nn.modules.batchnorm._BatchNorm, float | None, Tensor | None]] = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            tracked = module.num_batches_tracked.clone() if module.num_batches_tracked is not None else None
            saved.append((module, module.momentum, tracked))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum, tracked in saved:
            module.momentum = momentum
            if tracked is not None and module.num_batches_tracked is not None:
                module.num_batches_tracked.copy_(tracked)


def consistency_mse(strong: Tensor, weak: Tensor, target_strong: Tensor, target_weak: Tensor) -> Tensor:
    """MSE on frame outputs + MSE on clip outputs, mean over the whole batch (baseline)."""
    return nn.functional.mse_loss(strong.float(), target_strong.float()) + nn.functional.mse_loss(
        weak.float(), target_weak.float()
    )


def additive_hooks(perturbations: dict[str, Tensor]) -> dict[str, Callable[[Tensor], Tensor]]:
    return {loc: (lambda h, d=d: h + d) for loc, d in perturbations.items()}


def _prefix_activations(model: CRNN, start_h: Tensor, start: str, locations: Sequence[str]) -> dict[str, Tensor]:
    """Clean activations at `locations` needed to size d (one pass without grad)."""
    with torch.no_grad(), frozen_batchnorm(model):
        out = model.run(start_h, start=start)
    return {loc: out.activations[loc] for loc in locations}


def random_noise(h: Tensor, noise_scale: float, generator: torch.Generator | None = None) -> Tensor:
    """Eq. 5: Gaussian d with ||d|| = noise_scale * ||h|| per example."""
    noise = torch.randn(h.shape, device=h.device, dtype=h.dtype, generator=generator)
    return scale_to(noise, h, noise_scale)


def random_hooks(locations: Sequence[str], noise_scale: float) -> dict[str, Callable[[Tensor], Tensor]]:
    """Hooks adding eq.-5 noise at every location, sized on the activation they see."""
    return {loc: (lambda h: h + random_noise(h, noise_scale)) for loc in locations}


def _gradient_wrt(
    model: CRNN,
    start_h: Tensor,
    start: str,
    perturbations: dict[str, Tensor],
    target_strong: Tensor,
    target_weak: Tensor,
) -> dict[str, Tensor]:
    """grad_d MSE(target, f_l(h + d)) for every d, without touching parameter grads or BN stats."""
    ds = {loc: d.detach().requires_grad_(True) for loc, d in perturbations.items()}
    with torch.enable_grad(), frozen_batchnorm(model):
        out = model.run(start_h.detach(), start=start, hooks=additive_hooks(ds))
        loss = consistency_mse(out.strong, out.weak, target_strong, target_weak)
        grads = torch.autograd.grad(loss, list(ds.values()), allow_unused=True)
    return {
        loc: (g if g is not None else torch.zeros_like(ds[loc])).detach() for loc, g in zip(ds, grads)
    }


def adversarial_perturbation(
    model: CRNN,
    start_h: Tensor,
    start: str,
    locations: Sequence[str],
    target_strong: Tensor,
    target_weak: Tensor,
    epsilon: float,
) -> dict[str, Tensor]:
    """Eq. 6: one gradient step from a random start on the epsilon sphere."""
    acts = _prefix_activations(model, start_h, start, locations)
    d0 = {loc: random_noise(acts[loc], epsilon) for loc in locations}
    grads = _gradient_wrt(model, start_h, start, d0, target_strong, target_weak)
    return {loc: scale_to(grads[loc], acts[loc], epsilon) for loc in locations}


def vat_perturbation(
    model: CRNN,
    start_h: Tensor,
    start: str,
    locations: Sequence[str],
    target_strong: Tensor,
    target_weak: Tensor,
    epsilon: float,
    xi: float,
    iterations: int = 1,
) -> dict[str, Tensor]:
    """Eq. 8: power iteration for the most sensitive direction, scaled to epsilon * ||h||."""
    acts = _prefix_activations(model, start_h, start, locations)
    direction = {loc: torch.randn_like(acts[loc]) for loc in locations}
    for _ in range(iterations):
        probe = {loc: scale_to(direction[loc], acts[loc], xi) for loc in locations}
        grads = _gradient_wrt(model, start_h, start, probe, target_strong, target_weak)
        direction = grads
    return {loc: scale_to(direction[loc], acts[loc], epsilon) for loc in locations}


def power_iteration(matvec: Callable[[Tensor], Tensor], start: Tensor, iterations: int) -> Tensor:
    """Plain power iteration (used to check VAT's direction on a known quadratic)."""
    v = start / start.norm()
    for _ in range(iterations):
        v = matvec(v)
        v = v / (v.norm() + _EPS)
    return v


@dataclass
class MixupPlan:
    location: str
    lam: float
    permutation: Tensor

    def mix(self, h: Tensor) -> Tensor:
        return self.lam * h + (1.0 - self.lam) * h[self.permutation]

    def hooks(self) -> dict[str, Callable[[Tensor], Tensor]]:
        return {self.location: self.mix}


def plan_mixup(
    batch_size: int,
    locations: Sequence[str],
    alpha: float,
    device: torch.device,
    rng: _random.Random,
) -> MixupPlan:
    """Eq. 10: lambda ~ Beta(alpha, alpha), a batch permutation, one location of the set."""
    location = locations[0] if len(locations) == 1 else rng.choice(list(locations))
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    permutation = torch.randperm(batch_size, device="cpu").to(device)
    return MixupPlan(location=location, lam=lam, permutation=permutation)


def first_location(locations: Sequence[str]) -> str:
    return min(locations, key=LOCATIONS.index)

