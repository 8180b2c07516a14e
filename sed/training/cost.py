"""The training cost of a run in FLOPs, device-independent (issue #21: cost beside score).

A step's FLOPs are counted per CRNN stage pass (`cnn`, `rnn`, `heads`, i.e. the
modules a pass from an injection point runs, `CRNN.stages_from`):

- the forward FLOPs of one example through each stage are measured once per run with
  `torch.utils.flop_counter.FlopCounterMode` on one example of the first input that
  stage saw, on a time slice scaled to the clip (`stage_flops`; convolutions, GRU
  matrix products, linear layers; element-wise ops are not counted, the counter's
  convention);
- forward hooks count the passes each step makes through each stage of the student
  and the teacher, and their batch size: the clean pass, every direction-search
  pass (VAT: one per power iteration, adversarial: one), the perturbed pass, the
  teacher's pass;
- a pass made with gradients enabled counts 3x its forward FLOPs (forward +
  backward ~ 2 forwards, the usual rule), one without gradients 1x.

So `train_gflop` = sum over steps; `step_gflop` is the last step's. Counting a whole
step with FlopCounterMode instead costs ~100x a step on the CPU (the GRU is dispatched
one time step at a time under the counter), so it is measured per stage, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from sed.nn.model import CRNN

STAGES: tuple[str, ...] = ("cnn", "rnn", "heads")
#: A pass that builds a graph: forward + backward ~ 3 forwards.
GRAD_FACTOR = 3.0


#: Frames of the time slice a stage's FLOPs are measured on (then scaled to the whole clip).
SLICE_FRAMES = 16
_MEASURED: dict[tuple[str, str, tuple[int, ...]], float] = {}


def forward_flops(module: nn.Module, sample: Tensor) -> float:
    """Forward FLOPs of `module` on `sample` (no gradients, eval mode, the mode restored)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(sample)
    finally:
        module.train(was_training)
    return float(counter.get_total_flops())


def stage_flops(model: CRNN, stage: str, sample: Tensor) -> float:
    """Forward FLOPs of one example [1, T, F] through `stage`, measured on its first
    `SLICE_FRAMES` frames and scaled by T / SLICE_FRAMES: every counted layer (conv, GRU,
    linear) is linear in time, exact when the CNN's time pooling divides SLICE_FRAMES
    (the reference's 4 does). The counter dispatches the GRU one time step at a time,
    so the whole clip would cost seconds; remembered per model layout and shape."""
    key = (stage, repr(model.config), tuple(sample.shape))
    if key not in _MEASURED:
        frames = int(sample.shape[1])
        part = min(frames, SLICE_FRAMES)
        _MEASURED[key] = forward_flops(getattr(model, stage), sample[:, :part]) * frames / part
    return _MEASURED[key]


class StepCost:
    """Counts the FLOPs of each training step of `models` (the student, and the teacher if any).

    Only passes in train mode count (validation and prediction run in eval mode). With
    `optimizer`, a step ends at each `optimizer.step()` (a post-step hook); else call
    `end_step`.
    """

    def __init__(self, models: Iterable[CRNN | None], optimizer: torch.optim.Optimizer | None = None) -> None:
        self.models = [m for m in models if m is not None]
        self.per_example: dict[str, float] = {}
        self._samples: dict[str, Tensor] = {}
        self._passes: list[tuple[str, int, bool]] = []
        self._handles = [
            getattr(model, stage).register_forward_hook(self._hook(stage)) for model in self.models for stage in STAGES
        ]
        if optimizer is not None:
            self._handles.append(optimizer.register_step_post_hook(self._after_optimizer_step))
        self.total_flops = 0.0
        self.last_step_flops = 0.0

    def _after_optimizer_step(self, *_: Any) -> None:
        self.end_step()

    def _hook(self, stage: str) -> Any:
        def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Any) -> None:
            if not module.training:
                return
            x = inputs[0]
            self._passes.append((stage, int(x.shape[0]), torch.is_grad_enabled()))
            if stage not in self.per_example and stage not in self._samples:
                self._samples[stage] = x[:1].detach().clone()

        return record

    def end_step(self) -> float:
        """The FLOPs of the train-mode passes since the last call; added to `total_flops`."""
        for stage, sample in list(self._samples.items()):
            # measured in eval mode: the counter's own passes are not recorded
            self.per_example[stage] = stage_flops(self.models[0], stage, sample)
            del self._samples[stage]
        flops = sum(
            self.per_example.get(stage, 0.0) * batch * (GRAD_FACTOR if grad else 1.0)
            for stage, batch, grad in self._passes
        )
        self._passes = []
        self.total_flops += flops
        self.last_step_flops = flops
        return flops

    def metrics(self) -> dict[str, float]:
        """The run's training GFLOP so far and the last step's."""
        return {"train_gflop": self.total_flops / 1e9, "step_gflop": self.last_step_flops / 1e9}

    def resume(self, history: list[dict[str, Any]]) -> None:
        """Continue the count of a resumed run from its last epoch's `train_gflop`."""
        self.total_flops = 1e9 * float(history[-1].get("train_gflop") or 0.0) if history else 0.0

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


__all__ = ["GRAD_FACTOR", "SLICE_FRAMES", "STAGES", "StepCost", "forward_flops", "stage_flops"]
