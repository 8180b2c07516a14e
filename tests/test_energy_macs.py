"""Compute figures of a run (issue 24, item 2): MACs per 10 s clip against a hand count, CodeCarbon's
offline tracker on this machine, the leaderboard columns and their totals."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from sed.config import TrainConfig, apply_overrides
from sed.errors import ConfigError
from sed.nn.macs import macs_per_10s


def hand_count(filters, rnn_hidden, rnn_layers, n_classes=10, frames=628, bands=128, pools=None) -> int:
    """MACs of the CRNN layer by layer: 3x3 conv + the gated unit's 1x1 channel map per block (each
    T x F x C_out x C_in x k^2), the BiGRU (per step and direction 3 gates x (in x H + H x H)), the
    strong and attention heads (frames x in x classes each)."""
    pools = pools or [(2, 2), (2, 2)] + [(1, 2)] * (len(filters) - 2)
    channels = [1, *filters]
    macs, t, f = 0, frames, bands
    for i, (pool_t, pool_f) in enumerate(pools):
        macs += t * f * channels[i + 1] * channels[i] * 9  # conv 3x3
        macs += t * f * channels[i + 1] * channels[i + 1]  # gated unit: Linear_c as a 1x1 conv
        t, f = t // pool_t, f // pool_f
    n_in = channels[-1] * f
    for _ in range(rnn_layers):
        macs += 2 * t * 3 * (n_in * rnn_hidden + rnn_hidden * rnn_hidden)
        n_in = 2 * rnn_hidden
    macs += 2 * t * n_in * n_classes
    return macs


def test_default_crnn_macs_match_the_hand_count():
    config = TrainConfig()
    assert config.cnn_filters == (16, 32, 64, 128, 128, 128, 128) and config.rnn_hidden == 128
    expected = hand_count(config.cnn_filters, config.rnn_hidden, config.rnn_layers)
    assert expected == 922_969_088  # 0.92 G, the order of the DCASE 2023 baseline's 930.9 M
    assert macs_per_10s(config, 10) == expected
    # the demo's narrow CRNN (4 blocks, max pooling, 16 hidden): pooling and init change no MAC
    demo = apply_overrides(
        TrainConfig(), {"cnn_filters": "8,16,16,16", "rnn_hidden": "16", "pooling": "max", "weight_init": "torch"}
    )
    assert macs_per_10s(demo, 10) == hand_count((8, 16, 16, 16), 16, 2)


@pytest.mark.parametrize(
    "overrides",
    [
        {"cnn_filters": "4,8,8,8,8,8,8", "rnn_hidden": "8", "rnn_layers": "1"},
        {"cnn_filters": "8,16,16,16", "rnn_hidden": "16", "pooling": "max", "n_mels": "64"},
        {"cnn_filters": "8,16,16,16", "rnn_hidden": "12", "rnn_layers": "3", "n_mels": "64"},
    ],
)
def test_gru_closed_form_equals_the_counters_decomposition(overrides):
    # the count gives the GRU op a formula (sed.nn.macs.gru_flops) instead of letting the counter
    # decompose it step by step: the same number as the plain counter's, for 1 to 3 layers
    import dataclasses

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sed.constants import N_FRAMES
    from sed.nn.model import CRNN, CRNNConfig

    config = apply_overrides(TrainConfig(), overrides)
    model = CRNN(dataclasses.replace(CRNNConfig.from_fields(config, 10), weight_init="torch")).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, N_FRAMES, config.n_mels))
    assert macs_per_10s(config, 10) == counter.get_total_flops() // 2


def test_counting_leaves_the_global_random_stream_alone():
    # the count builds a model (its init draws from torch's global generator) and is cached per
    # process: a first trial in a fresh Ray worker would otherwise train on a shifted stream and
    # differ from the same config and seed run later in that worker
    import torch

    from sed.nn import macs

    macs._count.cache_clear()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    macs_per_10s(TrainConfig(cnn_filters=[4, 8, 8, 8, 8, 8, 8], rnn_hidden=8), 10)
    assert torch.equal(torch.rand(3), expected)


def test_energy_meter_reads_a_positive_energy_and_says_where_it_comes_from():
    from sed.training.energy import EnergyMeter

    meter = EnergyMeter("FRA", offset_kwh=0.5).start()
    start = time.perf_counter()
    while time.perf_counter() - start < 0.5:
        pass
    first = meter.read()
    final = meter.stop()
    assert 0.5 < first.kwh <= final.kwh < 0.5 + 1e-3
    for part in ("cpu: ", "gpu: ", "ram: "):
        assert part in final.source
    assert "measured" in final.source or "estimated" in final.source


def test_energy_country_is_checked():
    assert apply_overrides(TrainConfig(), {"energy_country": "USA"}).energy_country == "USA"
    with pytest.raises(ConfigError, match="energy_country='France'.*ISO 3166-1 alpha-3"):
        apply_overrides(TrainConfig(), {"energy_country": "France"})


def test_compute_columns_and_totals():
    from search.trial_compute import compute_columns, compute_totals

    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "energy_kwh": [1e-4, 3e-4],
            "energy_source": ["cpu: x", "cpu: x"],
            "macs_per_10s": [5e6, 5e6],
            "train_steps": [10, 20],
        }
    )
    assert compute_columns(history) == {
        "energy_kwh": 3e-4,
        "energy_source": "cpu: x",
        "macs_per_10s": 5e6,
        "train_steps": 20.0,
    }
    assert math.isnan(compute_columns(None)["energy_kwh"])
    frame = pd.DataFrame(
        {"energy_kwh": [1e-4, math.nan, 2e-4], "wall_seconds": [1.0, 2.0, 3.0], "train_steps": [10, 20, 30]}
    )
    totals = compute_totals(frame)
    assert totals["energy_kwh"] == pytest.approx(3e-4) and totals["wall_seconds"] == 6.0
    assert totals["train_steps"] == 60 and totals["runs"] == 3
