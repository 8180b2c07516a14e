"""Dropout of the CRNN, and the scopes in which several passes share one set of masks.

One job: the p = 0.5 masks from random bits (`half_dropout_mask`; the
largest single cost of the reference step on the CPU was `bernoulli_`), and
`tied_dropout` / `untied_dropout`, which decide whether a pass draws new
masks or replays those of an earlier pass of the same step (why:
`sed.augment.perturb`, "One network instance per step"; docs/faithfulness.md).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["Dropout", "half_dropout_mask", "tied_dropout", "untied_dropout"]


_BIT_SHIFTS: dict[torch.device, Tensor] = {}


def half_dropout_mask(shape: torch.Size, device: torch.device) -> Tensor:
    """A p = 0.5 inverted-dropout mask (values 0 or 2, uint8) from random bytes.

    Each random byte gives 8 independent fair bits, so the generator is called
    once per 8 elements instead of once per element as `bernoulli_` does (the
    largest single cost of the reference step on the CPU, docs/reference.md). Same
    distribution as `nn.Dropout(0.5)`: every element kept independently with
    probability 1/2 and scaled by 2.
    """
    numel = math.prod(shape)
    n_bytes = (numel + 7) // 8
    shifts = _BIT_SHIFTS.get(device)
    if shifts is None:
        shifts = _BIT_SHIFTS[device] = torch.arange(8, dtype=torch.uint8, device=device)
    random_bytes = torch.empty(n_bytes, dtype=torch.uint8, device=device).random_()
    bits = ((random_bytes.unsqueeze(-1) >> shifts) & 1) << 1
    return bits.reshape(-1)[:numel].reshape(shape)


class Dropout(nn.Dropout):
    """`nn.Dropout` whose p = 0.5 mask comes from random bits (see `half_dropout_mask`).

    Other rates, eval mode and `impl='torch'` use `torch.nn.functional.dropout`.
    The mask is kept as uint8 for the backward pass (1 byte per element).

    Inside `tied_dropout(model)` every call of a module after its first one
    reuses the mask that first call drew: several passes through the network
    then see one network instance (one set of dropout masks). That is how the
    direction searches of `sed.augment.perturb` and the perturbed training pass see
    the same network as the clean pass that made their target (the
    faithfulness notes in `sed/augment/perturb.py`).
    """

    def __init__(self, p: float = 0.5, impl: str = "bits") -> None:
        super().__init__(p)
        self.impl = impl
        #: Set by `tied_dropout`: the masks drawn so far in the tied scope (None: untied).
        self.tape: dict[int, Tensor] | None = None

    def _draw_mask(self, x: Tensor) -> Tensor:
        if self.impl == "bits" and self.p == 0.5 and x.dtype in (torch.float32, torch.float16, torch.bfloat16):
            mask = half_dropout_mask(x.shape, x.device)
            if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                # Same layout as x (the elements are i.i.d., so any layout is the same
                # distribution): a layout mismatch makes the product slower and NCHW.
                mask = torch.as_strided(mask.reshape(-1), x.shape, x.stride())
            return mask
        keep = 1.0 - self.p
        return torch.empty_like(x).bernoulli_(keep).div_(keep)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.tape is None:
            if self.impl == "bits" and self.p == 0.5:
                return x * self._draw_mask(x)
            return nn.functional.dropout(x, self.p, True)
        mask = self.tape.get(id(self))
        if mask is None:
            mask = self.tape[id(self)] = self._draw_mask(x)
        elif mask.shape != x.shape:
            raise RuntimeError(
                f"tied dropout: a pass gave this layer shape {tuple(x.shape)}, the first pass "
                f"{tuple(mask.shape)}; tied passes must use the same batch"
            )
        return x * mask


@contextlib.contextmanager
def tied_dropout(model: nn.Module, enabled: bool = True) -> Iterator[dict[int, Tensor]]:
    """Within this scope every pass through `model` uses the same dropout masks.

    The first pass to reach a dropout layer draws its mask (for the default
    p = 0.5 'bits' masks the RNG stream is consumed exactly as in an untied
    pass); later passes reuse it. A pass
    that starts at a later injection point (`CRNN.run(h, start='cnn')`)
    replays the masks of the layers it runs. Nested scopes on the same model
    keep the outer scope's masks. `enabled=False` makes it a no-op.
    """
    layers = [m for m in model.modules() if isinstance(m, Dropout)] if enabled else []
    if any(layer.tape is not None for layer in layers):
        yield layers[0].tape  # type: ignore[misc]
        return
    tape: dict[int, Tensor] = {}
    for layer in layers:
        layer.tape = tape
    try:
        yield tape
    finally:
        for layer in layers:
            layer.tape = None


@contextlib.contextmanager
def untied_dropout(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Inside a `tied_dropout` scope, let the passes of this block draw masks of their own."""
    layers = [m for m in model.modules() if isinstance(m, Dropout)] if enabled else []
    saved = [layer.tape for layer in layers]
    for layer in layers:
        layer.tape = None
    try:
        yield
    finally:
        for layer, tape in zip(layers, saved):
            layer.tape = tape
