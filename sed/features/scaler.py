"""Per-mel-band normalisation of the features: `Scaler` and `fit_scaler`.

One job: the mean and std per mel bin over the training data (the 2020
baseline's normalisation, docs/reference.md "Features"), fitted in one
streaming pass over memory-mapped features, applied to numpy arrays or torch
tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import torch

__all__ = ["Scaler", "fit_scaler"]


@dataclass(eq=False)
class Scaler:
    """Per-mel-band standardisation ``(x - mean) / std`` (docs/reference.md, Features: normalisation).

    ``mean`` and ``std`` have one value per mel band; :meth:`transform`
    broadcasts them over the last axis of numpy arrays or torch tensors (on
    the tensor's device and dtype).
    """

    mean: np.ndarray
    std: np.ndarray
    _torch_cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape or self.mean.size == 0:
            raise ValueError(
                f"Scaler: mean and std must be non-empty vectors of equal length (one per mel band), "
                f"got {self.mean.shape} and {self.std.shape}."
            )
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()) or (self.std <= 0).any():
            raise ValueError("Scaler: mean must be finite and std finite and > 0 in every band. Refit the scaler.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scaler):
            return NotImplemented
        return bool(np.array_equal(self.mean, other.mean) and np.array_equal(self.std, other.std))

    @property
    def n_mels(self) -> int:
        return int(self.mean.size)

    def _check(self, last: int) -> None:
        if last != self.n_mels:
            raise ValueError(f"Scaler: input has {last} values on its last axis, the scaler has {self.n_mels} bands.")

    def _torch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cache_key = (str(x.device), x.dtype)
        if cache_key not in self._torch_cache:
            self._torch_cache[cache_key] = (
                torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                torch.as_tensor(self.std, dtype=x.dtype, device=x.device),
            )
        return self._torch_cache[cache_key]

    @overload
    def transform(self, x: torch.Tensor) -> torch.Tensor: ...
    @overload
    def transform(self, x: np.ndarray) -> np.ndarray: ...
    def transform(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """``(x - mean) / std`` over the last axis; keeps float32 as float32 (numpy and torch)."""
        if isinstance(x, torch.Tensor):
            self._check(x.shape[-1])
            if not x.is_floating_point():
                x = x.float()
            mean, std = self._torch_stats(x)
            return (x - mean) / std
        array = np.asarray(x)
        self._check(array.shape[-1])
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float32)
        return (array.astype(dtype, copy=False) - self.mean.astype(dtype)) / self.std.astype(dtype)

    @overload
    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor: ...
    @overload
    def inverse_transform(self, x: np.ndarray) -> np.ndarray: ...
    def inverse_transform(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """``x * std + mean`` over the last axis."""
        if isinstance(x, torch.Tensor):
            self._check(x.shape[-1])
            mean, std = self._torch_stats(x)
            return x * std + mean
        array = np.asarray(x)
        self._check(array.shape[-1])
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float32)
        return array.astype(dtype, copy=False) * self.std.astype(dtype) + self.mean.astype(dtype)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-serialisable form (float64 values, exact round trip)."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Scaler:
        """Inverse of :meth:`to_dict`; refuses missing keys by name."""
        missing = [name for name in ("mean", "std") if name not in values]
        if missing:
            raise ValueError(f"Scaler.from_dict: missing key(s) {missing}; expected 'mean' and 'std' lists.")
        return cls(mean=np.asarray(values["mean"]), std=np.asarray(values["std"]))


def fit_scaler(
    arrays: Sequence[np.ndarray],
    chunk_rows: int = 1 << 16,
    min_std: float = 1e-5,
) -> Scaler:
    """Mean and (population) std per mel band over all frames of all clips of all ``arrays``.

    Each array is [..., n_mels] (typically a memmap [N, 628, 128] from
    :class:`FeatureStore`). It is streamed in chunks of ``chunk_rows`` frames
    with float64 accumulators merged by Chan et al.'s pairwise formula, so the
    memory use is one chunk regardless of the data size. ``std`` is floored at
    ``min_std`` so that a constant band cannot divide by zero.
    """
    if len(arrays) == 0:
        raise ValueError("fit_scaler: no arrays given; pass the training features (weak, unlabeled, synthetic).")
    n_mels = int(np.shape(arrays[0])[-1])
    count = 0
    mean = np.zeros(n_mels, dtype=np.float64)
    m2 = np.zeros(n_mels, dtype=np.float64)
    for index, array in enumerate(arrays):
        if np.shape(array)[-1] != n_mels:
            raise ValueError(
                f"fit_scaler: array {index} has {np.shape(array)[-1]} mel bands, array 0 has {n_mels}; "
                "all arrays must come from the same FeatureConfig."
            )
        rows = np.asarray(array).reshape(-1, n_mels)  # a view for C-contiguous memmaps: nothing is read yet
        for begin in range(0, rows.shape[0], chunk_rows):
            chunk = np.asarray(rows[begin : begin + chunk_rows], dtype=np.float64)
            if not np.isfinite(chunk).all():
                raise ValueError(
                    f"fit_scaler: array {index} contains NaN/inf in rows {begin}..{begin + chunk.shape[0] - 1}; "
                    "rebuild its features (delete the cache entry)."
                )
            n_chunk = chunk.shape[0]
            chunk_mean = chunk.mean(axis=0)
            chunk_m2 = ((chunk - chunk_mean) ** 2).sum(axis=0)
            total = count + n_chunk
            delta = chunk_mean - mean
            mean = mean + delta * (n_chunk / total)
            m2 = m2 + chunk_m2 + delta**2 * (count * n_chunk / total)
            count = total
    if count == 0:
        raise ValueError("fit_scaler: the arrays hold no frames; pass non-empty training features.")
    std = np.maximum(np.sqrt(m2 / count), min_std)
    return Scaler(mean=mean, std=std)
