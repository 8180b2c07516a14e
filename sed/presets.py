"""Named, ready configs: the nine rows of the paper's Table 1 and the realistic augmentations' own.

Above both `sed.config` and the augmentation registry (`sed.augment`): `PRESETS` holds
Table 1's rows (section 5, with `PAPER_TABLE1`, the paper's numbers), `REALISTIC_PRESETS`
the named configs the realistic augmentations declare in their registry entries, and
`ALL_PRESETS` both (`sed.train --preset` and a grid's `presets:` take any of them).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sed import augment
from sed.config import TrainConfig
from sed.errors import ConfigError


def _preset(**kwargs: Any) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), **kwargs).validate()


#: The nine rows of the paper's Table 1 (section 5), in table order.
#: Strengths the paper does not state (noise scale, epsilon, l2) are this
#: project's defaults and are meant to be searched.
PRESETS: dict[str, TrainConfig] = {
    "none": _preset(augmentation="none", locations="input", regularization="none", consistency_weight=0.0),
    # Rows 2 and 3 "differ only by the regularization method" (paper 5.1): both take
    # the reference's input noise, 30 dB SNR on the linear mel.
    "baseline": _preset(augmentation="snr_noise", locations="input", regularization="mt", noise_snr=30.0),
    "random-input-l2": _preset(augmentation="snr_noise", locations="input", regularization="l2", noise_snr=30.0),
    "random-latent-l2": _preset(augmentation="random", locations="latent", regularization="l2", noise_scale=0.1),
    "adversarial-latent-l2": _preset(augmentation="adversarial", locations="latent", regularization="l2", epsilon=0.1),
    "vat-input-mt": _preset(augmentation="vat", locations="input", regularization="mt", epsilon=0.1),
    "vat-input-l2": _preset(augmentation="vat", locations="input", regularization="l2", epsilon=0.1),
    "vat-latent-l2": _preset(augmentation="vat", locations="latent", regularization="l2", epsilon=0.1),
    "mixup-latent-l2": _preset(augmentation="mixup", locations="latent", regularization="l2", mixup_alpha=0.2),
}

#: Table 1 of the paper (public evaluation set), for side-by-side reports.
PAPER_TABLE1: dict[str, tuple[float, float]] = {
    "none": (0.291, 0.500),
    "baseline": (0.381, 0.552),
    "random-input-l2": (0.397, 0.534),
    "random-latent-l2": (0.388, 0.565),
    "adversarial-latent-l2": (0.374, 0.559),
    "vat-input-mt": (0.311, 0.461),
    "vat-input-l2": (0.358, 0.539),
    "vat-latent-l2": (0.362, 0.542),
    "mixup-latent-l2": (0.351, 0.507),
}


#: Beyond the paper (issue #16): each augmentation's own named configs, declared in its
#: registry entry (sed.augment.realistic: the realistic input augmentations, with l2
#: like the paper's best rows). Their strengths are this project's defaults, to be searched
#: (spaces/realistic.yaml).
REALISTIC_PRESETS: dict[str, TrainConfig] = {
    name: _preset(augmentation=entry.name, **overrides)
    for entry in augment.REGISTRY.values()
    for name, overrides in entry.presets
}

#: Every named config: Table 1's nine rows, then the realistic ones.
ALL_PRESETS: dict[str, TrainConfig] = {**PRESETS, **REALISTIC_PRESETS}


def preset(name: str) -> TrainConfig:
    if name not in ALL_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(ALL_PRESETS)}")
    return ALL_PRESETS[name]


__all__ = ["ALL_PRESETS", "PAPER_TABLE1", "PRESETS", "REALISTIC_PRESETS", "preset"]
