"""TrainConfig: presets, overrides, refusals naming the key."""

from __future__ import annotations

import pytest

from sed.config import SNR_30DB_SCALE, ConfigError, TrainConfig, apply_overrides, parse_locations, parse_set_arguments
from sed.presets import PAPER_TABLE1, PRESETS


def test_defaults_are_the_reference_baseline():
    cfg = TrainConfig()
    # the mean teacher with input noise; the exact reference noise (30 dB SNR on the
    # linear mel) is the `baseline` preset, the default augmentation works at every location
    assert (cfg.augmentation, cfg.locations, cfg.regularization) == ("random", "input", "mt")
    assert cfg.noise_snr == 30.0 and PRESETS["baseline"].augmentation == "snr_noise"
    assert cfg.batch_size == 24 and cfg.lr == 1e-3 and cfg.epochs == 200 and cfg.consistency_weight == 2.0
    assert cfg.rampup_epochs == 50.0 and cfg.ema_decay == 0.999
    assert cfg.offset_rounding == "floor" and cfg.consistency_dropout == "tied"
    assert cfg.noise_scale == pytest.approx(10 ** (-1.5)) == SNR_30DB_SCALE
    assert cfg.select == "student" and cfg.seed == 2020 and cfg.median_window == 7


def test_the_nine_table1_presets():
    assert list(PRESETS) == list(PAPER_TABLE1) and len(PRESETS) == 9
    rows = {name: (c.augmentation, c.location_set, c.regularization) for name, c in PRESETS.items()}
    assert rows["none"] == ("none", ("input",), "none")
    assert rows["baseline"] == ("snr_noise", ("input",), "mt")
    # rows 2 and 3 differ only by the regularisation (paper 5.1)
    base, row3 = PRESETS["baseline"], PRESETS["random-input-l2"]
    assert rows["random-input-l2"] == ("snr_noise", ("input",), "l2")
    assert base.noise_snr == row3.noise_snr == 30.0
    differing = {k for k, v in base.to_dict().items() if row3.to_dict()[k] != v}
    assert differing == {"regularization"}, differing
    assert rows["random-latent-l2"] == ("random", ("cnn", "rnn"), "l2")
    assert rows["adversarial-latent-l2"] == ("adversarial", ("cnn", "rnn"), "l2")
    assert rows["vat-input-mt"] == ("vat", ("input",), "mt")
    assert rows["mixup-latent-l2"] == ("mixup", ("cnn", "rnn"), "l2")


def test_locations_parse_in_network_order():
    assert parse_locations("latent") == ("cnn", "rnn")
    assert parse_locations("rnn+input") == ("input", "rnn")
    assert parse_locations("all") == ("input", "cnn", "rnn")


def test_overrides_coerce_strings_and_validate():
    cfg = apply_overrides(
        TrainConfig(),
        parse_set_arguments(
            ["epsilon=0.5", "cnn_filters=4,8,8", "compute_val_psds=true", "max_steps_per_epoch=none", "epochs=3"]
        ),
    )
    assert cfg.epsilon == 0.5 and cfg.cnn_filters == (4, 8, 8) and cfg.compute_val_psds is True
    assert cfg.max_steps_per_epoch is None and cfg.epochs == 3 and isinstance(cfg.epochs, int)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"augmentation": "cutout"}, "augmentation"),
        ({"locations": "decoder"}, "locations"),
        ({"locations": ""}, "locations"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"noise_scale": "-1"}, "noise_scale"),
        ({"regularization": "dropout"}, "regularization"),
        ({"regularization": "mt", "augmentation": "none"}, "regularization='mt'"),
        ({"select": "teacher", "regularization": "l2"}, "select='teacher'"),
        ({"epochs": "three"}, "epochs"),
        ({"epsilonn": 1}, "epsilonn"),
        ({"cnn_filters": "4,8,8,8,8,8,8,8"}, "cnn_filters"),
        ({"batch_size": 2}, "batch_size"),
        ({"augmentation": "snr_noise", "locations": "latent"}, "augmentation='snr_noise'"),
        ({"noise_snr": "inf"}, "noise_snr"),
        ({"consistency_dropout": "fresh"}, "consistency_dropout"),
        ({"offset_rounding": "round"}, "offset_rounding"),
    ],
)
def test_wrong_values_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        apply_overrides(TrainConfig(), overrides)
    assert key in str(info.value)


def test_set_argument_without_equals_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_arguments(["epsilon"])


def test_the_old_flag_names_still_read_with_a_deprecation_message():
    """`val_psds` / `val_psds1` name the score columns; the flags are compute_val_psds / compute_val_psds1."""
    with pytest.warns(FutureWarning, match="'val_psds' is deprecated: it is now 'compute_val_psds'"):
        cfg = apply_overrides(TrainConfig(), {"val_psds": "true"})
    assert cfg.compute_val_psds is True and "val_psds" not in cfg.to_dict()
    with pytest.warns(FutureWarning, match="compute_val_psds1"):
        assert apply_overrides(TrainConfig(), {"val_psds1": True}).compute_val_psds1 is True
