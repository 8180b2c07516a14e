"""Perturbations `d` of the paper's section 4.2, at any injection point.

Notation: `h` is the activation at a location, `f_l` the network from there
on (`CRNN.run(h, start=loc, hooks=...)`). Norms are per example (over every
axis but the batch) and sizes are relative to `||h||`, so one value means the
same at the input, the CNN output and the RNN output (docs/design.md).

- `random` (eq. 5): d ~ N(0, I), rescaled so ||d|| = noise_scale * ||h||.
- `adversarial` (eq. 6-7): eq. 6 takes the gradient of MSE(sg[f(x)], f_l(h + d))
  at d = 0, but the probe pass replays the clean pass's dropout masks (see
  below), so f_l(h + 0) *is* the target and the MSE has its minimum, with a
  zero gradient, there. The gradient is therefore taken at a random start d0
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
- `snr_noise` (the 2020 baseline's input noise, docs/reference.md "Training",
  teacher input noise): Gaussian noise at `noise_snr` dB SNR per mel band added to the
  *linear* mel, then amplitude-to-dB (amin 1e-5, top_db 80 per clip) and the
  per-band scaler, as the reference's AugmentGaussianNoise + ApplyLog +
  Normalize do. Input only. See `snr_noise`.

With several locations (e.g. `latent` = cnn + rnn), `random`, `adversarial`
and `vat` perturb all of them in one pass; adversarial/VAT directions are
found jointly (one gradient w.r.t. every d), each normalised by its own ||h||.
The perturbation is a sample, not a function of the parameters: its size
is computed from ||h|| with the gradient stopped.

One network instance per step (dropout). In train mode every pass through
the CRNN draws new dropout masks. A direction searched with other masks than
the clean pass that made the target maximises the *dropout disagreement*
between two sub-networks, not the sensitivity of eq. 6/8 (measured: VAT
directions from different random starts at the input had mean |cosine|
0.004 with dropout 0.5, 0.47 with dropout 0). So the direction search runs
inside `sed.nn.dropout.tied_dropout`: its probe passes replay the masks of the
clean pass (student, `l2`/`none`) or of the teacher's first pass (teacher,
`mt`), and the training pass that consumes d uses the same masks too
(`consistency_dropout='tied'`, the default; `'independent'` gives the
student's perturbed pass masks of its own, as before). The gradient passes
use `torch.autograd.grad` w.r.t. `d` only (nothing reaches parameter `.grad`),
run with BatchNorm running statistics frozen (`frozen_batchnorm`), and keep
the model in the train/eval mode it was in.
"""

from __future__ import annotations

import contextlib
import random as _random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sed.features.scaler import Scaler
from sed.nn.model import CRNN, LOCATIONS

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


def additive_hooks(perturbations: Mapping[str, Tensor]) -> dict[str, Callable[[Tensor], Tensor]]:
    def add(d: Tensor) -> Callable[[Tensor], Tensor]:
        return lambda h: h + d

    return {loc: add(d) for loc, d in perturbations.items()}


def _sizing_activations(
    model: CRNN,
    start_h: Tensor,
    start: str,
    locations: Sequence[str],
    given: Mapping[str, Tensor] | None,
) -> dict[str, Tensor]:
    """Clean activations at `locations` that size d (detached); one pass without grad if not given."""
    if given is not None and all(loc in given for loc in locations):
        return {loc: given[loc].detach() for loc in locations}
    with torch.no_grad(), frozen_batchnorm(model):
        out = model.run(start_h, start=start)
    return {loc: out.activations[loc] for loc in locations}


def random_noise(h: Tensor, noise_scale: float, generator: torch.Generator | None = None) -> Tensor:
    """Eq. 5: Gaussian d with ||d|| = noise_scale * ||h|| per example (a constant: no gradient)."""
    noise = torch.randn(h.shape, device=h.device, dtype=h.dtype, generator=generator)
    return scale_to(noise, h.detach(), noise_scale)


@dataclass(frozen=True)
class LogMelSpace:
    """How the network's input was made from the linear mel: dB floor and per-band scaler.

    `snr_noise` needs it to go back to the linear mel, add the noise there and
    come back exactly as the features were made (sed.features.logmel: amplitude-to-dB
    with ref 1, `amin`, `top_db` per clip; then the dataset's `Scaler`).
    """

    scaler: Scaler
    top_db: float | None = 80.0
    amin: float = 1e-5


def snr_noise(h: Tensor, space: LogMelSpace, snr_db: float, noise: Tensor | None = None) -> Tensor:
    """The 2020 baseline's input noise on normalised log-mel input `h` [B, T, F].

    Per clip and mel band b, with M the linear (amplitude) mel:
    sigma_b = sqrt(mean_t M[t, b]^2 * 10^(-snr/10)); M' = M + sigma_b * z with
    z ~ N(0, 1); then 20 log10(max(|M'|, amin)), floored at the clip's maximum
    minus top_db, and the scaler -- the reference's AugmentGaussianNoise(snr)
    followed by ApplyLog (librosa.amplitude_to_db) and Normalize.

    M is recovered from the cached dB features as 10^(dB / 20). That is exact
    wherever the clean value lies above the clip's top_db floor; at floored
    bins M is the floor value instead of the (smaller) true value, which
    changes the noisy result only where the noise and the floor are of the
    same size, by at most ~6 dB, before the result is floored again
    (measured on the embedded data: docs/faithfulness.md). `noise` is the
    standard normal sample z (drawn when None); the result carries no gradient
    (`snr_noisy_input` is the same map, differentiable in z).
    """
    with torch.no_grad():
        z = torch.randn(h.shape, device=h.device, dtype=torch.float32) if noise is None else noise
        return snr_noisy_input(h, space, snr_db, z).to(h.dtype)


def snr_noisy_input(h: Tensor, space: LogMelSpace, snr_db: float, z: Tensor) -> Tensor:
    """`snr_noise` with the noise sample z [B, T, F] given; differentiable w.r.t. z.

    Computed in the wider of h's and z's float types (float64 for gradcheck).
    """
    work = torch.promote_types(torch.promote_types(h.dtype, z.dtype), torch.float32)
    db = space.scaler.inverse_transform(h.detach().to(work))
    linear = torch.pow(10.0, db / 20.0)
    band_power = linear.pow(2).mean(dim=1, keepdim=True)  # mean over time, per band
    sigma = torch.sqrt(band_power * 10.0 ** (-snr_db / 10.0))
    noisy_db = 20.0 * torch.log10(torch.clamp((linear + sigma * z.to(work)).abs(), min=space.amin))
    if space.top_db is not None:
        peak = noisy_db.amax(dim=(1, 2), keepdim=True)
        noisy_db = torch.maximum(noisy_db, peak - space.top_db)
    return space.scaler.transform(noisy_db)


def snr_noise_hooks(space: LogMelSpace, snr_db: float) -> dict[str, Callable[[Tensor], Tensor]]:
    """A hook replacing the input by its `snr_noise` version (input only)."""
    return {"input": lambda h: snr_noise(h, space, snr_db)}


def random_hooks(locations: Sequence[str], noise_scale: float) -> dict[str, Callable[[Tensor], Tensor]]:
    """Hooks adding eq.-5 noise at every location, sized on the activation they see."""
    return {loc: (lambda h: h + random_noise(h, noise_scale)) for loc in locations}


def gradient_wrt(
    model: CRNN,
    start_h: Tensor,
    start: str,
    parameters: Mapping[str, Tensor],
    make_hooks: Callable[[Mapping[str, Tensor]], Mapping[str, Callable[[Tensor], Tensor]]],
    target_strong: Tensor,
    target_weak: Tensor,
) -> dict[str, Tensor]:
    """grad_theta MSE(target, f_l with hooks(theta)) for every tensor theta of `parameters`.

    The one gradient pass of every direction search (latent d, band gains, SNR
    noise): `torch.autograd.grad` w.r.t. theta only (parameter `.grad` is not
    touched), BatchNorm running statistics frozen, the model's mode kept.
    """
    thetas = {name: theta.detach().requires_grad_(True) for name, theta in parameters.items()}
    with torch.enable_grad(), frozen_batchnorm(model):
        out = model.run(start_h.detach(), start=start, hooks=make_hooks(thetas))
        loss = consistency_mse(out.strong, out.weak, target_strong, target_weak)
        grads = torch.autograd.grad(loss, list(thetas.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(thetas[name])).detach() for name, g in zip(thetas, grads)}


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
