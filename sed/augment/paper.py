"""The paper's augmentations (section 4.2, eq. 5-10) and the reference's input noise, as registry entries."""

from __future__ import annotations

import math

from sed.augment.families import adversarial_perturbation, vat_perturbation
from sed.augment.perturb import additive_hooks, plan_mixup, random_hooks, snr_noise_hooks
from sed.augment.registry import (
    Augmentation,
    AugmentationConfig,
    FieldRule,
    Perturbation,
    Probe,
    finite_above,
    finite_at_least,
    int_at_least,
    register,
)
from sed.nn.model import LOCATIONS

NOISE_SCALE = finite_at_least("noise_scale", 0.0, "random: ||d|| = noise_scale * ||h|| per example (eq. 5)")
EPSILON = finite_at_least("epsilon", 0.0, "adversarial/vat: ||d|| = epsilon * ||h|| per example (eq. 6-9)")
XI = finite_at_least("xi", 0.0, "vat (and filter_vat): relative size of the power iteration's probe")
XI_POSITIVE = finite_above("xi", 0.0)
VAT_ITERS = int_at_least("vat_iters", 1, "vat (and filter_vat): power iterations")
MIXUP_ALPHA = finite_above("mixup_alpha", 0.0, "mixup: lambda ~ Beta(mixup_alpha, mixup_alpha) (eq. 10)")
NOISE_SNR = FieldRule(
    "noise_snr",
    lambda v: isinstance(v, (int, float)) and math.isfinite(v),
    "a finite number of dB",
    "snr_noise / snr_adversarial: SNR in dB of the noise per mel band on the linear mel",
)


def _random(probe: Probe, config: AugmentationConfig) -> Perturbation:
    return Perturbation(random_hooks(probe.locations, config.noise_scale))


def _adversarial(probe: Probe, config: AugmentationConfig) -> Perturbation:
    d = adversarial_perturbation(
        probe.model,
        probe.start_h,
        probe.start,
        probe.locations,
        probe.target_strong,
        probe.target_weak,
        config.epsilon,
        activations=probe.activations,
    )
    return Perturbation(additive_hooks(d))


def _vat(probe: Probe, config: AugmentationConfig) -> Perturbation:
    d = vat_perturbation(
        probe.model,
        probe.start_h,
        probe.start,
        probe.locations,
        probe.target_strong,
        probe.target_weak,
        config.epsilon,
        config.xi,
        config.vat_iters,
        activations=probe.activations,
    )
    return Perturbation(additive_hooks(d))


def _mixup(probe: Probe, config: AugmentationConfig) -> Perturbation:
    plan = plan_mixup(probe.batch_size, probe.locations, config.mixup_alpha, probe.start_h.device, probe.rng)
    return Perturbation(plan.hooks(), start=plan.location, mix=plan.mix)


def _snr_noise(probe: Probe, config: AugmentationConfig) -> Perturbation:
    assert probe.input_space is not None  # needs_input_space: checked by the caller
    return Perturbation(snr_noise_hooks(probe.input_space, config.noise_snr))


NONE = register(
    Augmentation(
        name="none",
        summary="none (`L_const = 0`; refused with `mt`)",
        locations=LOCATIONS,
        source="eq. 4",
    )
)
RANDOM = register(
    Augmentation(
        name="random",
        summary="Gaussian `d`, `|d| = noise_scale |h|`",
        locations=LOCATIONS,
        fields=(NOISE_SCALE,),
        build=_random,
        source="eq. 5",
    )
)
ADVERSARIAL = register(
    Augmentation(
        name="adversarial",
        summary="one gradient step from a random start, `|d| = epsilon |h|`",
        locations=LOCATIONS,
        fields=(EPSILON,),
        build=_adversarial,
        source="eq. 6-7",
    )
)
VAT = register(
    Augmentation(
        name="vat",
        summary="power iteration, then `|d| = epsilon |h|`",
        locations=LOCATIONS,
        fields=(EPSILON, XI, VAT_ITERS),
        requires=(XI_POSITIVE,),
        build=_vat,
        source="eq. 8-9",
    )
)
MIXUP = register(
    Augmentation(
        name="mixup",
        summary="`lambda h + (1 - lambda) h[perm]`, target mixed alike; one location per step",
        locations=LOCATIONS,
        fields=(MIXUP_ALPHA,),
        build=_mixup,
        source="eq. 10",
    )
)
SNR_NOISE = register(
    Augmentation(
        name="snr_noise",
        summary="Gaussian noise at `noise_snr` dB per mel band on the linear mel",
        locations=("input",),
        fields=(NOISE_SNR,),
        build=_snr_noise,
        needs_input_space=True,
        source="the 2020 baseline",
    )
)
