"""The augmentation registry (sed.augment): one entry owns each augmentation's rules."""

from __future__ import annotations

import dataclasses

import pytest

from sed import augment as augmentations
from sed.augment import REGISTRY, Augmentation, field_rules, readers, register
from sed.config import AUGMENTATIONS, FIELD_TYPES, INPUT_ONLY_AUGMENTATIONS, ConfigError, TrainConfig, apply_overrides
from sed.presets import PRESETS, REALISTIC_PRESETS, preset


def test_config_enumerations_are_the_registrys():
    assert AUGMENTATIONS == tuple(REGISTRY)[: len(AUGMENTATIONS)] == augmentations.NAMES
    assert AUGMENTATIONS[:6] == ("none", "random", "adversarial", "vat", "mixup", "snr_noise")
    assert set(INPUT_ONLY_AUGMENTATIONS) == {
        "snr_noise",
        "filter",
        "filter_adversarial",
        "filter_vat",
        "snr_adversarial",
    }
    for augmentation in REGISTRY.values():
        for name in augmentation.field_names:
            assert name in FIELD_TYPES, (augmentation.name, name)
    assert set(field_rules()) == {
        "noise_scale",
        "epsilon",
        "xi",
        "vat_iters",
        "mixup_alpha",
        "noise_snr",
        "filter_bands",
        "filter_min_width",
        "filter_db",
        "filter_mode",
    }
    assert readers("xi") == ("vat", "filter_vat")
    assert readers("epsilon") == ("adversarial", "vat")
    assert readers("filter_db") == ("filter", "filter_adversarial", "filter_vat")
    assert readers("noise_snr") == ("snr_noise", "snr_adversarial")
    assert readers("consistency_weight") == ()
    assert not REGISTRY["none"].perturbs and all(REGISTRY[n].perturbs for n in AUGMENTATIONS if n != "none")


def test_an_entry_is_refused_twice_or_at_an_unknown_location():
    with pytest.raises(ValueError, match="registered twice"):
        register(Augmentation(name="random", summary="", locations=("input",)))
    with pytest.raises(ValueError, match="locations"):
        register(Augmentation(name="somewhere", summary="", locations=("decoder",)))
    assert "somewhere" not in REGISTRY


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"augmentation": "filter", "locations": "latent"}, "augmentation='filter' is defined at ['input'] only"),
        ({"augmentation": "snr_adversarial", "locations": "rnn"}, "augmentation='snr_adversarial' is defined at"),
        ({"augmentation": "filter", "filter_mode": "ramp"}, "filter_mode='ramp' must be one of ['step', 'linear']"),
        ({"augmentation": "filter", "filter_bands": 0}, "filter_bands=0 must be >= 1"),
        ({"augmentation": "filter", "filter_min_width": 0}, "filter_min_width=0 must be >= 1"),
        ({"augmentation": "filter_vat", "filter_db": -1.0}, "filter_db=-1.0 must be a finite number >= 0"),
        ({"augmentation": "filter_adversarial", "filter_bands": 30}, "filter_bands=30 x filter_min_width=6 = 180"),
        ({"augmentation": "filter_vat", "xi": 0.0}, "xi=0.0 must be > 0 for augmentation=filter_vat"),
        ({"augmentation": "snr_adversarial", "noise_snr": "nan"}, "noise_snr=nan must be a finite number of dB"),
        ({"augmentation": "none", "regularization": "mt"}, "regularization='mt' with augmentation='none'"),
    ],
)
def test_refusals_name_the_key_and_come_from_the_entry(overrides, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(TrainConfig(), overrides)
    assert message in str(info.value)


def test_a_field_is_checked_always_but_a_cross_field_rule_only_when_its_augmentation_is_chosen():
    with pytest.raises(ConfigError, match="filter_db=-2.0"):
        apply_overrides(TrainConfig(), {"augmentation": "random", "filter_db": -2.0})
    # 30 bands of >= 6 bins do not fit 128 mel bins, but `random` does not read them
    cfg = apply_overrides(TrainConfig(), {"augmentation": "random", "filter_bands": 30})
    assert cfg.filter_bands == 30
    # xi = 0 is refused for vat / filter_vat only (table above); other augmentations do not probe
    assert apply_overrides(TrainConfig(), {"augmentation": "random", "xi": 0.0}).xi == 0.0


def test_realistic_presets_beside_the_nine_table1_rows():
    assert len(PRESETS) == 9 and not set(PRESETS) & set(REALISTIC_PRESETS)
    rows = {name: (c.augmentation, c.location_set, c.regularization) for name, c in REALISTIC_PRESETS.items()}
    assert rows == {
        "filter-input-l2": ("filter", ("input",), "l2"),
        "filter-adversarial-input-l2": ("filter_adversarial", ("input",), "l2"),
        "filter-vat-input-l2": ("filter_vat", ("input",), "l2"),
        "snr-adversarial-input-l2": ("snr_adversarial", ("input",), "l2"),
    }
    assert preset("filter-vat-input-l2") is REALISTIC_PRESETS["filter-vat-input-l2"]
    cfg = REALISTIC_PRESETS["filter-input-l2"]
    assert (cfg.filter_bands, cfg.filter_min_width, cfg.filter_db, cfg.filter_mode) == (3, 6, 6.0, "linear")
    # every realistic augmentation also takes the mean teacher and no regulariser
    for name in REALISTIC_PRESETS:
        for regularization in ("mt", "none"):
            dataclasses.replace(REALISTIC_PRESETS[name], regularization=regularization).validate()


def test_the_readme_augmentation_table_is_the_registry():
    """README.md's table is `sed.augment.table.markdown_table()` (python -m sed.augment.table prints it)."""
    from pathlib import Path

    from sed.augment.table import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown_table() in readme, "README.md's augmentation table differs: paste python -m sed.augment.table"
