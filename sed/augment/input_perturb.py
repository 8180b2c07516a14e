"""Realistic input perturbations: band filter gains and noise at an SNR, random or worst-case.

Each is a differentiable family `h -> apply(h, theta)` of the normalised
log-mel input, with a bounded parameter theta:

- band filter (`sed.augment.band_filter`): theta = the band gains [B, P] in dB,
  bounded by |gain| <= filter_db (the box random gains are drawn from);
- noise at an SNR (`sed.augment.perturb.snr_noisy_input`): theta = the standard
  normal sample z [B, T, F] of the reference's noise, bounded per clip and
  mel band by ||z_b||^2 = T, so that the noise power of every band is
  exactly its power 10^(-snr / 10) below the band's: the SNR holds exactly.

The worst case inside the bound is searched by the same code as the latent
directions (`sed.augment.families`, eq. 6-9; `as_family` adapts a family here): on the network instance (dropout masks) of the
pass that made the target (`tied_dropout`), gradients w.r.t. theta only,
BatchNorm statistics frozen (`sed.augment.perturb.gradient_wrt`).

- adversarial (eq. 6-7 on theta): one gradient step from a random start
  (the gradient at theta = 0 vanishes on the clean pass's instance), to the
  bound: gains = filter_db * sign(g) (the steepest ascent in the box, FGSM);
  z_b = sqrt(T) * g_b / ||g_b|| per band.
- vat (eq. 8-9 on theta): power iterations with a probe of relative size
  xi, then scaled to the bound (gains: filter_db * r / max |r|).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from sed.augment.band_filter import BandLayout, filter_input, random_gains
from sed.augment.families import Family, Theta, adversarial, vat
from sed.augment.perturb import LogMelSpace, snr_noisy_input
from sed.nn.model import CRNN


@dataclass(frozen=True)
class InputFamily:
    """A bounded, differentiable perturbation of the input: `apply(h, theta)`."""

    apply: Callable[[Tensor, Tensor], Tensor]
    #: A random theta inside the bound (the random augmentation; adversarial's start).
    random: Callable[[], Tensor]
    #: The step from the random start to the bound along the ascent direction g (adversarial).
    ascend: Callable[[Tensor, Tensor], Tensor]
    #: A direction r scaled to `fraction` of the bound (VAT's probe: xi; its result: 1).
    scale: Callable[[Tensor, float], Tensor]

    def hooks(self, theta: Tensor) -> dict[str, Callable[[Tensor], Tensor]]:
        return {"input": lambda h: self.apply(h, theta)}


def filter_family(h: Tensor, space: LogMelSpace, n_bands: int, min_width: int, mode: str, db: float) -> InputFamily:
    """Band gains of one random band layout per example, |gain| <= db."""
    layout = BandLayout.draw(h.shape[0], h.shape[-1], n_bands, min_width, mode, h.device)

    def box(r: Tensor, fraction: float) -> Tensor:
        # no additive eps: gradients of the gains can be ~1e-12 (a tiny L_const) and keep their direction
        peak = r.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        return fraction * db * r / peak

    return InputFamily(
        apply=lambda x, gains: filter_input(x, space.scaler, gains, layout.weights, space.top_db, space.amin),
        random=lambda: random_gains(h.shape[0], layout.n_gains, db, h.device),
        ascend=lambda start, g: db * torch.sign(g),
        scale=box,
    )


def snr_family(h: Tensor, space: LogMelSpace, snr_db: float) -> InputFamily:
    """The reference's noise sample z at `snr_db`, ||z_b||^2 = T per clip and band."""
    frames = h.shape[1]

    def per_band(r: Tensor, fraction: float) -> Tensor:
        # in float64: gradients of a few bands can be ~1e-12, where an additive eps would shrink them
        wide = r.double()
        norm = wide.norm(dim=1, keepdim=True)  # over time: one norm per clip and band
        return (fraction * math.sqrt(frames) * wide / norm.clamp_min(1e-300)).to(r.dtype)

    return InputFamily(
        apply=lambda x, z: snr_noisy_input(x, space, snr_db, z).to(x.dtype),
        random=lambda: torch.randn(h.shape, device=h.device, dtype=torch.float32),
        # the start's magnitudes with the signs of the gradient, at the exact SNR
        ascend=lambda start, g: per_band(torch.where(g == 0, start, start.abs() * torch.sign(g)), 1.0),
        scale=per_band,
    )


@dataclass(frozen=True)
class _AtInput:
    """An `InputFamily` in the form of `sed.augment.families.Family` (theta = {"input": ...})."""

    family: InputFamily

    def hooks(self, theta: Mapping[str, Tensor]) -> dict[str, Callable[[Tensor], Tensor]]:
        return self.family.hooks(theta["input"])

    def draw(self) -> Theta:
        return {"input": self.family.random()}

    def draw_direction(self) -> Theta:
        return {"input": torch.randn_like(self.family.random())}

    def to_bound(self, start: Theta, gradient: Theta) -> Theta:
        return {"input": self.family.ascend(start["input"], gradient["input"])}

    def probe(self, direction: Theta, xi: float) -> Theta:
        return {"input": self.family.scale(direction["input"], xi)}

    def bound(self, direction: Theta) -> Theta:
        return {"input": self.family.scale(direction["input"], 1.0)}


def as_family(family: InputFamily) -> Family:
    return _AtInput(family)


def adversarial_theta(
    model: CRNN, x: Tensor, family: InputFamily, target_strong: Tensor, target_weak: Tensor
) -> Tensor:
    """Eq. 6 on theta (`sed.augment.families.adversarial`): a random start, its gradient, the bound.

    Call it inside the `tied_dropout` scope of the pass that made the target;
    on its own it opens one (its passes agree with each other).
    """
    return adversarial(model, x, "input", as_family(family), target_strong, target_weak)["input"]


def vat_theta(
    model: CRNN,
    x: Tensor,
    family: InputFamily,
    target_strong: Tensor,
    target_weak: Tensor,
    xi: float,
    iterations: int = 1,
) -> Tensor:
    """Eq. 8 on theta (`sed.augment.families.vat`): power iteration with probe xi, scaled to the bound."""
    return vat(model, x, "input", as_family(family), target_strong, target_weak, xi, iterations)["input"]


__all__ = ["InputFamily", "adversarial_theta", "as_family", "filter_family", "snr_family", "vat_theta"]
