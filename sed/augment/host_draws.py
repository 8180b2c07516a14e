"""Random draws a training step makes on the host, and how a captured step replays them.

One job. A few perturbations draw on the host each step: mixup's location
(Python `random`), its lambda and batch permutation (torch's CPU generator),
FilterAugment's band layout (CPU generator). Eagerly these are plain calls
(`choose`, `tensors`: the draw, then a copy to the device). A step captured as
a CUDA graph (`sed.training.fast_step`) cannot copy host values inside the graph, and
a host value read during capture would be frozen into it. So under a
`Recorder`:

- `choose` (a draw that changes which kernels run, e.g. the mixup location)
  is made *before* the step by the recorder, in the same order and from the
  same generator as eagerly; each combination of choices has its own graph;
- `tensors` (draws that only change values) return static device buffers;
  before every replay the recorder calls the same host draw functions, in the
  order the step made them, and copies their results into those buffers.

The host generators are therefore consumed exactly as in the eager step,
so a captured step draws what the eager step would.
"""

from __future__ import annotations

import contextlib
import random as _random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Recorder", "active", "choose", "tensors"]

Draw = Callable[[], tuple[Tensor, ...]]

_ACTIVE: Recorder | None = None


def active() -> bool:
    """Whether a step run by a `Recorder` is under way (its draws may become static buffers)."""
    return _ACTIVE is not None


def choose(options: Sequence[str], rng: _random.Random) -> str:
    """One of `options` (uniform from `rng`; the only one without drawing)."""
    if _ACTIVE is not None:
        return _ACTIVE.choose(options, rng)
    return options[0] if len(options) == 1 else rng.choice(list(options))


def tensors(draw: Draw, device: torch.device) -> tuple[Tensor, ...]:
    """`draw()` made on the host, on `device` (under capture: the static buffers it is copied into)."""
    if _ACTIVE is not None:
        return _ACTIVE.tensors(draw, device)
    return tuple(t.to(device) for t in draw())


@dataclass
class _KeyDraws:
    """The host value draws of the steps of one choice combination, and their static buffers."""

    draws: list[Draw] = field(default_factory=list)
    buffers: list[tuple[Tensor, ...]] = field(default_factory=list)


class Recorder:
    """The host draws of one training step function, for eager runs and graph replays.

    `run(mode, key)` scopes each run of the step. The first run (key None)
    chooses inline and shows the choice points; later runs get their choices
    drawn beforehand (`draw_key`): 'eager' runs draw values inline and keep
    the draw functions and buffers of the first run of each key, 'capture'
    returns those buffers, and `load(key)` refills them before each replay.
    """

    def __init__(self) -> None:
        #: The options of each choice point, in the order the step meets them (None: not seen yet).
        self.choice_points: list[tuple[str, ...]] | None = None
        self.by_key: dict[tuple[str, ...], _KeyDraws] = {}
        self.mode = "eager"
        self._forced: list[str] | None = None
        self._key: tuple[str, ...] | None = None
        self._index = 0
        self._options_seen: list[tuple[str, ...]] = []

    # -- before a step ------------------------------------------------------------
    def draw_key(self, rng: _random.Random) -> tuple[str, ...] | None:
        """The choices of the next step, drawn now (None before the first step has shown the choice points)."""
        if self.choice_points is None:
            return None
        return tuple(opts[0] if len(opts) == 1 else rng.choice(list(opts)) for opts in self.choice_points)

    @contextlib.contextmanager
    def run(self, mode: str, key: tuple[str, ...] | None) -> Iterator[None]:
        """Scope of one run of the step: eager (key None: choose inline) or capture (key given)."""
        global _ACTIVE
        if mode == "capture" and key is None:
            raise ValueError("a capture needs the step's choices (key)")
        self.mode, self._forced, self._key, self._index = mode, None if key is None else list(key), key, 0
        options_seen: list[tuple[str, ...]] = []
        self._options_seen = options_seen
        outer, _ACTIVE = _ACTIVE, self
        try:
            yield
        finally:
            _ACTIVE = outer
        if self.choice_points is None:
            self.choice_points = options_seen
        elif options_seen != self.choice_points:
            raise RuntimeError(
                f"the step's choice points changed between runs ({self.choice_points} -> {options_seen}); "
                "a captured step needs the same ones every step"
            )

    def load(self, key: tuple[str, ...]) -> None:
        """Before a replay of `key`'s graph: make its host draws and copy them into the buffers."""
        record = self.by_key.get(key)
        if record is None:  # a step without host value draws
            return
        for draw, buffers in zip(record.draws, record.buffers):
            for buffer, value in zip(buffers, draw()):
                buffer.copy_(value.pin_memory() if buffer.is_cuda else value, non_blocking=buffer.is_cuda)

    # -- inside the step ---------------------------------------------------------
    def choose(self, options: Sequence[str], rng: _random.Random) -> str:
        options = tuple(options)
        self._options_seen.append(options)
        if self._forced is None:  # the first step: choose inline, as eagerly
            return options[0] if len(options) == 1 else rng.choice(list(options))
        return self._forced[len(self._options_seen) - 1]

    def tensors(self, draw: Draw, device: torch.device) -> tuple[Tensor, ...]:
        if self._key is None:  # the first step (choices not known before it): draw inline only
            return tuple(t.to(device) for t in draw())
        record = self.by_key.setdefault(self._key, _KeyDraws())
        index, self._index = self._index, self._index + 1
        if self.mode == "capture":
            return record.buffers[index]
        values = tuple(t.to(device) for t in draw())
        if index == len(record.draws):  # first eager run of this key: keep the draw and make its buffers
            record.draws.append(draw)
            record.buffers.append(tuple(torch.empty_like(v) for v in values))
        return values
