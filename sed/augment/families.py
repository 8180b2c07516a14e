"""Perturbation families, and adversarial / VAT search written once for all of them.

A family is a bounded, differentiable perturbation with a parameter theta (a dict: one
tensor per injection point it acts at); the network hooks `hooks(theta)` apply it. Three
families exist:

- `AdditiveFamily`: the paper's d (section 4.2) at any set of locations (input, cnn,
  rnn), theta = d, bounded by ||d|| = epsilon * ||h|| per example and location;
- the band gains of FilterAugment and the noise sample of the reference's SNR noise,
  at the input (`sed.augment.input_perturb.InputFamily`, bound by `filter_db` and by the
  SNR; `as_family` puts one in this form).

`adversarial` (eq. 6-7) and `vat` (eq. 8-9) search theta inside the bound for any family:
on the network instance (dropout masks) of the pass that made the target
(`tied_dropout`; nested scopes keep the outer masks), gradients w.r.t. theta only,
BatchNorm statistics frozen (`sed.augment.perturb.gradient_wrt`). A new augmentation at
any location is then a family (five methods) and a registry entry, not new machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from sed.augment.perturb import _sizing_activations, additive_hooks, gradient_wrt, random_noise, scale_to
from sed.nn.dropout import tied_dropout
from sed.nn.model import CRNN

Theta = dict[str, Tensor]
Hooks = dict[str, Callable[[Tensor], Tensor]]


class Family(Protocol):
    """A bounded perturbation family; every theta is a dict location -> tensor."""

    def hooks(self, theta: Mapping[str, Tensor]) -> Hooks: ...

    def draw(self) -> Theta:
        """A random theta inside the bound (the random augmentation; adversarial's start)."""
        ...

    def draw_direction(self) -> Theta:
        """VAT's random starting direction."""
        ...

    def to_bound(self, start: Theta, gradient: Theta) -> Theta:
        """Adversarial's step from `start` to the bound along the ascent direction."""
        ...

    def probe(self, direction: Theta, xi: float) -> Theta:
        """VAT's finite-difference probe of relative size `xi` along `direction`."""
        ...

    def bound(self, direction: Theta) -> Theta:
        """`direction` scaled to the bound (VAT's result)."""
        ...


def gradient(model: CRNN, start_h: Tensor, start: str, family: Family, theta: Theta, ts: Tensor, tw: Tensor) -> Theta:
    """grad_theta MSE(target, f_l with the family's hooks at theta)."""
    return gradient_wrt(model, start_h, start, theta, family.hooks, ts, tw)


def adversarial(model: CRNN, start_h: Tensor, start: str, family: Family, ts: Tensor, tw: Tensor) -> Theta:
    """Eq. 6: the gradient at a random theta inside the bound (it vanishes at theta = 0 on the
    clean pass's instance), then one step to the bound."""
    with tied_dropout(model):
        origin = family.draw()
        return family.to_bound(origin, gradient(model, start_h, start, family, origin, ts, tw))


def vat(
    model: CRNN,
    start_h: Tensor,
    start: str,
    family: Family,
    ts: Tensor,
    tw: Tensor,
    xi: float,
    iterations: int = 1,
) -> Theta:
    """Eq. 8: power iteration from a random direction with probes of size xi, scaled to the bound."""
    with tied_dropout(model):
        direction = family.draw_direction()
        for _ in range(iterations):
            direction = gradient(model, start_h, start, family, family.probe(direction, xi), ts, tw)
        return family.bound(direction)


@dataclass(frozen=True)
class AdditiveFamily:
    """The paper's d at `locations`: h + d, ||d|| = epsilon * ||h|| per example (sizes from `acts`)."""

    acts: Mapping[str, Tensor]
    locations: tuple[str, ...]
    epsilon: float

    def hooks(self, theta: Mapping[str, Tensor]) -> Hooks:
        return additive_hooks(theta)

    def _scaled(self, theta: Mapping[str, Tensor], relative: float) -> Theta:
        return {loc: scale_to(theta[loc], self.acts[loc], relative) for loc in self.locations}

    def draw(self) -> Theta:
        return {loc: random_noise(self.acts[loc], self.epsilon) for loc in self.locations}

    def draw_direction(self) -> Theta:
        return {loc: torch.randn_like(self.acts[loc]) for loc in self.locations}

    def to_bound(self, start: Theta, gradient: Theta) -> Theta:
        return self._scaled(gradient, self.epsilon)

    def probe(self, direction: Theta, xi: float) -> Theta:
        return self._scaled(direction, xi)

    def bound(self, direction: Theta) -> Theta:
        return self._scaled(direction, self.epsilon)


def adversarial_perturbation(
    model: CRNN,
    start_h: Tensor,
    start: str,
    locations: Sequence[str],
    target_strong: Tensor,
    target_weak: Tensor,
    epsilon: float,
    activations: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Eq. 6 for the additive d: one gradient step from a random start on the epsilon sphere.

    `activations` (the clean activations at `locations`, e.g. those of the
    clean training pass) size d; without them a pass without gradient finds
    them. Call it inside the `tied_dropout` scope of the pass that made the
    target, so that the search sees that network instance (sed.augment.perturb);
    on its own it opens a scope of its own (its passes agree with each other).
    """
    with tied_dropout(model):
        acts = _sizing_activations(model, start_h, start, locations, activations)
        family = AdditiveFamily(acts, tuple(locations), epsilon)
        return adversarial(model, start_h, start, family, target_strong, target_weak)


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
    activations: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Eq. 8 for the additive d: the most sensitive direction, scaled to epsilon * ||h||.

    `activations` and the dropout scope as for `adversarial_perturbation`.
    """
    with tied_dropout(model):
        acts = _sizing_activations(model, start_h, start, locations, activations)
        family = AdditiveFamily(acts, tuple(locations), epsilon)
        return vat(model, start_h, start, family, target_strong, target_weak, xi, iterations)


__all__ = [
    "AdditiveFamily",
    "Family",
    "Theta",
    "adversarial",
    "adversarial_perturbation",
    "gradient",
    "vat",
    "vat_perturbation",
]
