"""Filter augmentation's band gains (sed.augment.band_filter): layouts, hand computations, gradients."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from sed.augment.band_filter import (
    BandLayout,
    band_weights,
    draw_band_edges,
    filter_input,
    offsets_db,
    random_gains,
)
from sed.augment.perturb import LogMelSpace, consistency_mse, snr_noisy_input
from sed.errors import ConfigError
from sed.features.scaler import Scaler
from sed.nn.model import CRNN, CRNNConfig


def test_band_edges_cover_the_axis_with_bands_at_least_min_width():
    torch.manual_seed(0)
    edges = draw_band_edges(500, 128, 4, 6)
    assert edges.shape == (500, 5)
    assert (edges[:, 0] == 0).all() and (edges[:, -1] == 128).all()
    widths = edges.diff(dim=1)
    assert int(widths.min()) == 6  # the minimum is reached ...
    assert int(widths.max()) > 60  # ... and the slack goes anywhere
    tight = draw_band_edges(10, 12, 3, 4)  # no slack: one layout
    assert (tight == torch.tensor([0, 4, 8, 12])).all()
    with pytest.raises(ConfigError, match="filter_bands=3 x filter_min_width=5"):
        draw_band_edges(1, 12, 3, 5)


def test_step_and_linear_weights_by_hand():
    edges = torch.tensor([[0, 2, 6]])
    step = band_weights(edges, 6, "step")[0]
    assert torch.equal(step, torch.tensor([[1.0, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]]))
    linear = band_weights(edges, 6, "linear")[0]
    gains = torch.tensor([[0.0, 6.0, -6.0]])
    # band 0 (bins 0-1) ramps 0 -> 6, band 1 (bins 2-5) ramps 6 -> -6
    assert torch.allclose(offsets_db(gains, linear[None]), torch.tensor([[0.0, 6, 6, 2, -2, -6]]))
    assert torch.allclose(linear.sum(dim=0), torch.ones(6))  # a partition of unity
    one_bin = band_weights(torch.tensor([[0, 1, 3]]), 3, "linear")[0]  # a 1-bin band takes its first edge
    assert torch.allclose(offsets_db(torch.tensor([[1.0, 2.0, 3.0]]), one_bin[None]), torch.tensor([[1.0, 2, 3]]))


def small_space(rng: np.random.Generator, n: int) -> tuple[LogMelSpace, np.ndarray, np.ndarray]:
    mean = rng.uniform(-30, -10, size=n)
    std = rng.uniform(5, 15, size=n)
    return LogMelSpace(Scaler(mean, std), top_db=80.0), mean, std


def test_filter_is_the_gain_on_the_linear_mel_by_hand():
    rng = np.random.default_rng(0)
    mel = 10 ** rng.uniform(-2.0, 0.5, size=(5, 6))  # [T, F], 50 dB range: nothing floored
    space, mean, std = small_space(rng, 6)
    clean_db = librosa.amplitude_to_db(mel, ref=1.0, amin=1e-5, top_db=80.0)
    h = torch.tensor((clean_db - mean) / std)[None]
    edges = torch.tensor([[0, 2, 6]])
    for mode, gains, per_bin in (
        ("step", [3.0, -6.0], [3.0, 3, -6, -6, -6, -6]),
        ("linear", [0.0, 6.0, -6.0], [0.0, 6, 6, 2, -2, -6]),
    ):
        weights = band_weights(edges, 6, mode, torch.float64)
        out = filter_input(h, space.scaler, torch.tensor([gains], dtype=torch.float64), weights)[0].numpy()
        filtered = mel * 10 ** (np.array(per_bin) / 20)  # the gain on the linear (amplitude) mel
        expected = (librosa.amplitude_to_db(filtered, ref=1.0, amin=1e-5, top_db=80.0) - mean) / std
        assert np.allclose(out, expected, atol=1e-9), mode


def test_filter_is_the_identity_at_0_db_and_refloors_like_the_features():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    space, mean, std = small_space(rng, 128)
    db = torch.rand(3, 20, 128) * -80.0  # within 80 dB of a 0 dB peak, as cached features are
    db[:, 0, 0] = 0.0
    h = space.scaler.transform(db)
    layout = BandLayout.draw(3, 128, 4, 6, "linear")
    zero = torch.zeros(3, layout.n_gains)
    assert torch.allclose(filter_input(h, space.scaler, zero, layout.weights), h, atol=1e-5)
    # +6 dB everywhere raises the peak by 6: nothing drops below the new floor, all moves by 6 dB
    up = space.scaler.inverse_transform(filter_input(h, space.scaler, zero + 6.0, layout.weights))
    assert torch.allclose(up - db, torch.full_like(db, 6.0), atol=1e-3)
    # -6 dB on the band holding the peak only: bins of other bands that were near the floor are
    # re-floored at the new peak - 80 dB, as amplitude-to-dB of the filtered mel would do
    gains = random_gains(3, layout.n_gains, 6.0)
    out = space.scaler.inverse_transform(filter_input(h, space.scaler, gains, layout.weights))
    assert (out >= out.amax(dim=(1, 2), keepdim=True) - 80.0 - 1e-3).all()
    offset = offsets_db(gains, layout.weights)
    assert torch.all(offset.abs() <= 6.0 + 1e-6)


def tiny_double_model() -> CRNN:
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(cnn_filters=(2, 2), rnn_hidden=2, n_classes=2, dropout=0.0)).double().eval()
    with torch.no_grad():
        for block in model.cnn.blocks:
            block.gate.linear.weight.normal_(0.0, 0.7)
    return model


@pytest.mark.parametrize("mode", ["step", "linear"])
def test_the_gradient_wrt_gains_through_the_filter_and_a_crnn_matches_finite_differences(mode):
    model = tiny_double_model()
    rng = np.random.default_rng(2)
    space, _, _ = small_space(rng, 128)
    h = torch.randn(2, 8, 128, dtype=torch.float64)
    layout = BandLayout.draw(2, 128, 3, 6, mode, dtype=torch.float64)
    with torch.no_grad():
        clean = model.run(h)

    def loss(gains: torch.Tensor) -> torch.Tensor:
        out = model.run(filter_input(h, space.scaler, gains, layout.weights))
        return consistency_mse(out.strong, out.weak, clean.strong, clean.weak).double()

    gains = (torch.rand(2, layout.n_gains, dtype=torch.float64) * 2 - 1) * 6.0
    assert torch.autograd.gradcheck(loss, (gains.requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_the_gradient_wrt_the_snr_noise_sample_matches_finite_differences():
    rng = np.random.default_rng(3)
    mel = 10 ** rng.uniform(-2.0, 0.5, size=(1, 6, 5))  # nothing near the floors or amin
    space, mean, std = small_space(rng, 5)
    h = torch.tensor((20 * np.log10(mel) - mean) / std)
    z = torch.randn(1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: snr_noisy_input(h, space, 30.0, z), (z,), eps=1e-6, atol=1e-6)
