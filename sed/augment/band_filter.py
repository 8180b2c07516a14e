"""Random piecewise band gains over the mel axis, as a differentiable map of the gains.

The augmentation is FilterAugment's (Nam et al., "Filter Augmentation for
sound event detection", ICASSP 2022): the mel axis is cut into `n_bands`
bands at random edges, each at least `min_width` bins wide, and every band
gets a gain in dB -- constant over the band (`step`), or given at the band
edges and linearly interpolated between them (`linear`). A gain of g dB is
the factor 10^(g / 20) on the linear (amplitude) mel, i.e. + g dB on the
log-mel.

Here the gains -> per-bin offset map is linear: `offset_db = gains @ W`,
with `W` the [B, P, F] band layout of each example (P = n_bands for step,
n_bands + 1 for linear), so the adversarial/VAT searches of
`sed.augment.perturb` differentiate the filtered input w.r.t. the gains directly.

The network's input is the normalised log-mel, so `filter_input` goes back
through the dataset's `Scaler` to dB, adds the offset, re-applies the
feature recipe's floors (amin and the clip's top_db, as amplitude-to-dB of
the filtered linear mel would) and normalises again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sed.errors import ConfigError
from sed.features.scaler import Scaler

FILTER_MODES: tuple[str, ...] = ("step", "linear")


def check_layout(n_bins: int, n_bands: int, min_width: int, mode: str) -> None:
    """Refuse a band layout that cannot be drawn, naming the key and the fix."""
    if mode not in FILTER_MODES:
        raise ConfigError(f"filter_mode={mode!r}: choose one of {list(FILTER_MODES)}")
    if n_bands < 1:
        raise ConfigError(f"filter_bands={n_bands!r} must be >= 1")
    if min_width < 1:
        raise ConfigError(f"filter_min_width={min_width!r} must be >= 1 mel bin")
    if n_bands * min_width > n_bins:
        raise ConfigError(
            f"filter_bands={n_bands} x filter_min_width={min_width} = {n_bands * min_width} mel bins "
            f"> the {n_bins} bands of the input; lower either"
        )


def draw_band_edges(
    batch: int, n_bins: int, n_bands: int, min_width: int, generator: torch.Generator | None = None
) -> Tensor:
    """Band edges per example, [batch, n_bands + 1] int64: 0 = e_0 < e_1 < ... < e_n = n_bins.

    Every band is at least `min_width` bins wide; the slack n_bins - n_bands * min_width
    is cut at n_bands - 1 uniform (sorted) points, so every layout of the slack can occur.
    """
    check_layout(n_bins, n_bands, min_width, "step")
    slack = n_bins - n_bands * min_width
    cuts = torch.randint(0, slack + 1, (batch, n_bands - 1), generator=generator).sort(dim=1).values
    interior = cuts + torch.arange(1, n_bands) * min_width
    zero = torch.zeros(batch, 1, dtype=torch.int64)
    full = torch.full((batch, 1), n_bins, dtype=torch.int64)
    return torch.cat([zero, interior, full], dim=1)


def band_weights(edges: Tensor, n_bins: int, mode: str, dtype: torch.dtype = torch.float32) -> Tensor:
    """The gains -> bins map W [B, P, F] of band edges [B, n_bands + 1].

    step: W[b, i, f] = 1 where bin f lies in band i (P = n_bands).
    linear: P = n_bands + 1 gains at the edges; a bin at position t in [0, 1]
    of its band (t = (f - start) / (width - 1); 0 for a 1-bin band) takes
    (1 - t) of the band's first edge gain and t of its second (both ends of
    a band sit on its edge gains, as a linear ramp from edge to edge).
    """
    if mode not in FILTER_MODES:
        raise ConfigError(f"filter_mode={mode!r}: choose one of {list(FILTER_MODES)}")
    n_bands = edges.shape[1] - 1
    bins = torch.arange(n_bins, device=edges.device).expand(edges.shape[0], n_bins)
    band = torch.searchsorted(edges[:, 1:-1].contiguous(), bins.contiguous(), right=True)  # [B, F]
    if mode == "step":
        return torch.nn.functional.one_hot(band, n_bands).transpose(1, 2).to(dtype)
    start = edges.gather(1, band)
    width = edges.gather(1, band + 1) - start
    t = ((bins - start).to(dtype) / (width - 1).clamp(min=1).to(dtype)).unsqueeze(1)  # [B, 1, F]
    lower = torch.nn.functional.one_hot(band, n_bands + 1).transpose(1, 2).to(dtype)
    upper = torch.nn.functional.one_hot(band + 1, n_bands + 1).transpose(1, 2).to(dtype)
    return lower * (1.0 - t) + upper * t


def n_gains(n_bands: int, mode: str) -> int:
    """Gains per example: one per band (step) or one per band edge (linear)."""
    return n_bands + 1 if mode == "linear" else n_bands


def offsets_db(gains: Tensor, weights: Tensor) -> Tensor:
    """Per-bin dB offset [B, F] = gains [B, P] @ W [B, P, F].

    Element-wise products and a sum, not a matmul: autocast leaves them in the
    gains' precision (a bf16 matmul would round a 6 dB offset by ~0.03 dB).
    """
    return (gains.unsqueeze(-1) * weights.to(gains.dtype)).sum(dim=1)


@dataclass(frozen=True)
class BandLayout:
    """One draw of band edges for a batch, and the gains -> bins map they give."""

    edges: Tensor
    weights: Tensor

    @classmethod
    def draw(
        cls,
        batch: int,
        n_bins: int,
        n_bands: int,
        min_width: int,
        mode: str,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> BandLayout:
        check_layout(n_bins, n_bands, min_width, mode)
        edges = draw_band_edges(batch, n_bins, n_bands, min_width)
        return cls(edges=edges.to(device), weights=band_weights(edges, n_bins, mode, dtype).to(device))

    @property
    def n_gains(self) -> int:
        return int(self.weights.shape[1])


def random_gains(
    batch: int, n_gains_: int, db: float, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """Gains uniform in [-db, db] dB, [batch, n_gains]."""
    return (torch.rand(batch, n_gains_, device=device, dtype=dtype) * 2.0 - 1.0) * db


def filter_db(db: Tensor, offset: Tensor, top_db: float | None, amin: float) -> Tensor:
    """dB features [B, T, F] of the linear mel scaled by 10^(offset / 20) per bin.

    amplitude-to-dB of the filtered mel: db + offset, floored at 20 log10(amin)
    and at the clip's maximum minus top_db (as the features were made).
    """
    out = torch.clamp(db + offset.unsqueeze(1), min=20.0 * math.log10(amin))
    if top_db is not None:
        peak = out.amax(dim=(1, 2), keepdim=True)
        out = torch.maximum(out, peak - top_db)
    return out


def filter_input(
    h: Tensor, scaler: Scaler, gains: Tensor, weights: Tensor, top_db: float | None = 80.0, amin: float = 1e-5
) -> Tensor:
    """Normalised log-mel `h` [B, T, F] with band gains [B, P] applied (differentiable in gains)."""
    work = torch.promote_types(h.dtype, gains.dtype)
    db = scaler.inverse_transform(h.to(work))
    filtered = filter_db(db, offsets_db(gains.to(work), weights), top_db, amin)
    return scaler.transform(filtered).to(h.dtype)


__all__ = [
    "FILTER_MODES",
    "BandLayout",
    "band_weights",
    "check_layout",
    "draw_band_edges",
    "filter_db",
    "filter_input",
    "n_gains",
    "offsets_db",
    "random_gains",
]
