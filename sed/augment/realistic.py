"""Realistic input augmentations beyond the paper: band filter gains and noise at an SNR.

`filter` is FilterAugment (Nam et al., ICASSP 2022): random piecewise band
gains in dB over the mel axis, a plain consistency augmentation like eq. 5.
`filter_adversarial` / `filter_vat` choose the gains (|gain| <= filter_db)
that increase the consistency MSE most, as eq. 6-9 choose d; and
`snr_adversarial` is the reference's noise at `noise_snr` dB with the
worst-case sample instead of a random one. All are input only and go back
through the features' dB floor and scaler (`sed.augment.input_perturb`).
"""

from __future__ import annotations

from sed.augment.band_filter import FILTER_MODES, check_layout
from sed.augment.input_perturb import InputFamily, adversarial_theta, filter_family, snr_family, vat_theta
from sed.augment.paper import NOISE_SNR, VAT_ITERS, XI, XI_POSITIVE
from sed.augment.registry import (
    Augmentation,
    AugmentationConfig,
    Perturbation,
    Probe,
    finite_at_least,
    int_at_least,
    one_of,
    register,
)
from sed.constants import N_MELS

FILTER_BANDS = int_at_least("filter_bands", 1, "filter*: number of bands over the mel axis")
FILTER_MIN_WIDTH = int_at_least("filter_min_width", 1, "filter*: minimum band width in mel bins")
FILTER_DB = finite_at_least(
    "filter_db", 0.0, "filter*: gains in [-filter_db, filter_db] dB (the bound of the searches)"
)
FILTER_MODE = one_of("filter_mode", FILTER_MODES, "filter*: step (a gain per band) or linear (gains at the edges)")
FILTER_FIELDS = (FILTER_BANDS, FILTER_MIN_WIDTH, FILTER_DB, FILTER_MODE)


def _check_filter(config: AugmentationConfig) -> None:
    check_layout(getattr(config, "n_mels", N_MELS), config.filter_bands, config.filter_min_width, config.filter_mode)


def _filter_of(probe: Probe, config: AugmentationConfig) -> InputFamily:
    assert probe.input_space is not None  # needs_input_space: checked by the caller
    return filter_family(
        probe.start_h,
        probe.input_space,
        config.filter_bands,
        config.filter_min_width,
        config.filter_mode,
        config.filter_db,
    )


def _filter(probe: Probe, config: AugmentationConfig) -> Perturbation:
    family = _filter_of(probe, config)
    return Perturbation(family.hooks(family.random()))


def _filter_adversarial(probe: Probe, config: AugmentationConfig) -> Perturbation:
    family = _filter_of(probe, config)
    gains = adversarial_theta(probe.model, probe.start_h, family, probe.target_strong, probe.target_weak)
    return Perturbation(family.hooks(gains))


def _filter_vat(probe: Probe, config: AugmentationConfig) -> Perturbation:
    family = _filter_of(probe, config)
    gains = vat_theta(
        probe.model, probe.start_h, family, probe.target_strong, probe.target_weak, config.xi, config.vat_iters
    )
    return Perturbation(family.hooks(gains))


def _snr_adversarial(probe: Probe, config: AugmentationConfig) -> Perturbation:
    assert probe.input_space is not None
    family = snr_family(probe.start_h, probe.input_space, config.noise_snr)
    z = adversarial_theta(probe.model, probe.start_h, family, probe.target_strong, probe.target_weak)
    return Perturbation(family.hooks(z))


FILTER = register(
    Augmentation(
        name="filter",
        summary="random band gains in `[-filter_db, filter_db]` dB over the mel axis, `step` or `linear`",
        locations=("input",),
        fields=FILTER_FIELDS,
        build=_filter,
        check=_check_filter,
        needs_input_space=True,
        source="FilterAugment (Nam et al., ICASSP 2022)",
        presets=(("filter-input-l2", {"locations": "input", "regularization": "l2"}),),
    )
)
FILTER_ADVERSARIAL = register(
    Augmentation(
        name="filter_adversarial",
        summary="gains `filter_db * sign(gradient)` from a random start",
        locations=("input",),
        fields=FILTER_FIELDS,
        build=_filter_adversarial,
        check=_check_filter,
        needs_input_space=True,
        source="beyond the paper",
        presets=(("filter-adversarial-input-l2", {"locations": "input", "regularization": "l2"}),),
    )
)
FILTER_VAT = register(
    Augmentation(
        name="filter_vat",
        summary="gains by power iteration, scaled to `max |gain| = filter_db`",
        locations=("input",),
        fields=FILTER_FIELDS + (XI, VAT_ITERS),
        requires=(XI_POSITIVE,),
        build=_filter_vat,
        check=_check_filter,
        needs_input_space=True,
        source="beyond the paper",
        presets=(("filter-vat-input-l2", {"locations": "input", "regularization": "l2"}),),
    )
)
SNR_ADVERSARIAL = register(
    Augmentation(
        name="snr_adversarial",
        summary="the same noise, magnitudes of a random draw, signs of the loss gradient, exactly `noise_snr` dB per band",
        locations=("input",),
        fields=(NOISE_SNR,),
        build=_snr_adversarial,
        needs_input_space=True,
        source="beyond the paper",
        presets=(("snr-adversarial-input-l2", {"locations": "input", "regularization": "l2", "noise_snr": 30.0}),),
    )
)
