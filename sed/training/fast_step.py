"""The training step near the chip: one CUDA graph per step, no host synchronisation.

`TrainConfig.fast_step`: `auto` (the default: `graph` on CUDA without `amp`,
else `off`), `off` (the trainer's eager step), `graph`.

The eager step launches hundreds of small kernels from Python and copies the
loss terms to the host every step. `FastStep` runs the same step -- the loss
terms of `sed.training.objectives` (clean pass, `consistency_loss` with every
augmentation of the registry, L2), backward, Adam, the EMA update -- as a
function with no host synchronisation (`step_losses`), and captures it whole
as a CUDA graph; a step is then one copy of the batch into static buffers and
one replay. On an H200 that is 1.2-1.6x faster than the eager step, and the
step is then bound by the GPU's own work (benchmarks/README.md, "GPU path").
What would need the host inside the step lives on the device instead:

- the step counter, the ramp-up w(t), the learning rate (a device tensor that
  Adam reads: `fused=True, capturable=True`) and the EMA alpha;
- the rows of the strong and weak parts (index tensors: the batch layout is
  fixed), the BCE without the CUDA kernel's range assert (a NaN would kill
  the process; here it gives a NaN loss), no finiteness check inside the step;
- the six logged loss terms of every step, written into a [steps, 6] device
  table that the trainer reads once per epoch (`read_history`): the same
  per-step values as the eager step logs, and a NaN or infinite one stops the
  run with `TrainingDiverged` naming its step -- at the end of the epoch
  instead of at once;
- host draws (mixup's location, lambda and permutation, FilterAugment's band
  layout) are made before the replay from the same generators, in the same
  order, and copied into static buffers (`sed.augment.host_draws`); each combination
  of structural choices (the mixup location) has its own graph.

The first step, and the first `warmup` steps of each choice combination, run
eagerly (they are real training steps); the graph is captured after them
(capture executes nothing) and replayed from then on. Dropout masks and
noise come from the CUDA generator inside the graph, whose state advances per
replay as in eager mode, so a replay draws what the eager step would.
Loading an optimizer state replaces its tensors: call `invalidate()` after
it (the trainer does), and the graphs are captured again.
"""

from __future__ import annotations

import random as _random
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from sed.augment import get as get_augmentation
from sed.augment import host_draws
from sed.augment.perturb import LogMelSpace
from sed.config import FAST_STEPS, TrainConfig
from sed.nn.dropout import tied_dropout
from sed.nn.model import CRNN
from sed.training.batches import Batch
from sed.training.objectives import objective_rest

__all__ = ["FAST_STEPS", "LOSS_NAMES", "BatchRows", "FastStep", "bce", "resolve", "step_losses"]

#: The columns of the loss table, as `sed.training.objectives.LossTerms.as_floats` names them.
LOSS_NAMES: tuple[str, ...] = (
    "loss_total",
    "loss_class_strong",
    "loss_class_weak",
    "loss_class",
    "loss_const",
    "loss_reg",
)


def resolve(config: TrainConfig, device: torch.device) -> str:
    """The step a run uses: 'graph' or 'off' (`auto`: graph on CUDA without amp)."""
    mode = config.fast_step
    if mode == "auto":
        return "graph" if device.type == "cuda" and not config.amp else "off"
    if mode == "graph" and device.type != "cuda":
        raise ValueError(f"fast_step=graph needs a CUDA device (device is {device}); use fast_step=auto or off")
    if mode == "graph" and config.amp:
        raise ValueError("fast_step=graph runs fp32 (amp's loss scaling syncs with the host); set amp=false")
    return mode


@dataclass(frozen=True)
class BatchRows:
    """Rows of the strong part and of the clip-labelled part (index tensors: no boolean indexing)."""

    strong: Tensor
    clip: Tensor

    @classmethod
    def of(cls, batch: Batch, weak_loss_on_strong: bool) -> BatchRows:
        clip_mask = batch.weak_mask | batch.strong_mask if weak_loss_on_strong else batch.weak_mask
        return cls(batch.strong_mask.nonzero().flatten(), clip_mask.nonzero().flatten())


def bce(probs: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy on probabilities, logs clamped at -100 as torch's; no range assert."""
    if probs.numel() == 0:
        return probs.new_zeros((), dtype=torch.float32)
    p, t = probs.float(), targets.float()
    log_p = torch.log(p).clamp_min(-100.0)
    log_q = torch.log1p(-p).clamp_min(-100.0)
    return ((t - 1.0) * log_q - t * log_p).mean()


def step_losses(
    student: CRNN,
    teacher: CRNN | None,
    batch: Batch,
    rows: BatchRows,
    config: TrainConfig,
    weight: Tensor | float,
    rng: _random.Random,
    input_space: LogMelSpace | None = None,
) -> tuple[Tensor, Tensor]:
    """`sed.objectives.compute_losses` without host synchronisation: (total, the six logged terms).

    Same passes, masks and order as `compute_losses` (its docstring); the
    classification rows come as index tensors and `weight` may be a device scalar.
    """
    with_const = get_augmentation(config.augmentation).perturbs and config.consistency_weight > 0
    with tied_dropout(student, enabled=with_const):  # as compute_losses: d is found on the student (eq. 8)
        clean = student.run(batch.features)
        loss_strong = bce(clean.strong.index_select(0, rows.strong), batch.strong_targets.index_select(0, rows.strong))
        loss_weak = bce(clean.weak.index_select(0, rows.clip), batch.weak_targets.index_select(0, rows.clip))
        const, reg, total = objective_rest(
            student, teacher, batch.features, clean, (loss_strong, loss_weak), config, weight, rng, input_space
        )
    terms = (total, loss_strong, loss_weak, loss_strong + loss_weak, const, reg)
    values = torch.stack([t.detach().float() for t in terms])
    return total, values


class FastStep:
    """One run's training step as a replayed CUDA graph (`capture=False`: the same step, eagerly)."""

    def __init__(
        self,
        student: CRNN,
        teacher: CRNN | None,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        rng: _random.Random,
        input_space: LogMelSpace | None,
        rampup_steps: float,
        capacity: int,
        capture: bool = True,
        warmup: int = 2,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.student, self.teacher, self.optimizer = student, teacher, optimizer
        self.config, self.rng, self.input_space = config, rng, input_space
        self.rampup_steps = float(rampup_steps)
        self.device = next(student.parameters()).device
        self.capture = capture and self.device.type == "cuda"
        self.warmup = max(int(warmup), 1)
        #: Mixed precision of the loss passes (bf16 needs no loss scaling); None: fp32, what the
        #: trainer runs (bf16 was no faster on an H200: benchmarks/README.md).
        self.autocast = autocast
        self.capacity = max(int(capacity), 1)
        dev = self.device
        self.step_t = torch.zeros((), dtype=torch.float64, device=dev)
        self.lr_t = torch.full((), config.lr, dtype=torch.float32, device=dev)
        self.history = torch.zeros(self.capacity, len(LOSS_NAMES), dtype=torch.float32, device=dev)
        self.history_i = torch.zeros((), dtype=torch.int64, device=dev)
        self.recorder = host_draws.Recorder()
        self.static: Batch | None = None
        self.rows: BatchRows | None = None
        self.graphs: dict[tuple[str, ...], torch.cuda.CUDAGraph] = {}
        self.seen: dict[tuple[str, ...], int] = {}
        self.first_done = False
        #: Why capture failed (the step then runs eagerly, still without host sync), or None.
        self.capture_error: str | None = None
        self._bind_optimizer()

    # -- host side ----------------------------------------------------------------
    def _bind_optimizer(self) -> None:
        """Adam reads the learning rate from `lr_t`; on CUDA its step is fused and capturable."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_t
            if self.capture:
                group["capturable"], group["fused"], group["foreach"] = True, True, None
        if self.capture:
            for state in self.optimizer.state.values():
                step = state.get("step")
                if isinstance(step, Tensor) and step.device != self.device:
                    state["step"] = step.to(self.device, torch.float32)

    def invalidate(self) -> None:
        """Drop the graphs (after an optimizer state was loaded: its tensors are new)."""
        self.graphs.clear()
        self.seen.clear()
        self._bind_optimizer()

    def set_step(self, step: int) -> None:
        """Set the device step counter (ramp-up, EMA) and start a new loss table (no sync)."""
        self.step_t.fill_(float(step))
        self.history_i.zero_()

    def read_history(self, n: int) -> np.ndarray:
        """The loss terms of the last `n` steps since `set_step` (one host copy), [n, 6]."""
        if n > self.capacity:
            raise ValueError(f"{n} steps since set_step but the loss table holds {self.capacity}")
        return self.history[:n].cpu().numpy().astype(np.float64)

    def _copy_in(self, batch: Batch) -> None:
        if self.static is None:
            self.static = Batch(
                *(
                    t.detach().clone()
                    for t in (
                        batch.features,
                        batch.strong_targets,
                        batch.weak_targets,
                        batch.strong_mask,
                        batch.weak_mask,
                    )
                )
            )
            self.rows = BatchRows.of(self.static, self.config.weak_loss_on_strong)
            return
        for dst, src in zip(
            (self.static.features, self.static.strong_targets, self.static.weak_targets),
            (batch.features, batch.strong_targets, batch.weak_targets),
        ):
            if dst.shape != src.shape:
                raise ValueError(
                    f"fast_step: a batch of shape {tuple(src.shape)} after {tuple(dst.shape)}; the captured "
                    "step needs one batch shape (fast_step=off for varying batches)"
                )
            dst.copy_(src, non_blocking=True)

    def step(self, batch: Batch) -> None:
        """One training step on `batch` (the trainer's batch layout); nothing waits for the GPU."""
        self._copy_in(batch)
        if not self.first_done:  # the first step shows the choice points (mixup location)
            self._eager(None)
            self.first_done = True
            return
        key = self.recorder.draw_key(self.rng)
        assert key is not None
        if not self.capture:
            self._eager(key)
            return
        graph = self.graphs.get(key)
        if graph is None:
            if self.seen.get(key, 0) < self.warmup:
                self._eager(key)
                self.seen[key] = self.seen.get(key, 0) + 1
                return
            try:
                graph = self.graphs[key] = self._capture(key)
            except RuntimeError as error:  # e.g. an op that cannot be captured: keep the step, eagerly
                self.capture_error = f"{type(error).__name__}: {error}"
                warnings.warn(
                    f"fast_step: CUDA graph capture failed ({self.capture_error}); running eagerly", stacklevel=2
                )
                self.capture = False
                self._eager(key)
                return
        self.recorder.load(key)
        graph.replay()

    def _eager(self, key: tuple[str, ...] | None) -> None:
        if not self.capture:
            with self.recorder.run("eager", key):
                self._body()
            return
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), self.recorder.run("eager", key):
            self._body()
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _capture(self, key: tuple[str, ...]) -> torch.cuda.CUDAGraph:
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), self.recorder.run("capture", key):
            self._body()
        return graph

    # -- the step (device work only) ------------------------------------------------
    def _body(self) -> None:
        cfg = self.config
        assert self.static is not None and self.rows is not None
        step = self.step_t
        if self.rampup_steps > 0:
            t = (step / self.rampup_steps).clamp(0.0, 1.0)
            rampup = torch.exp(-5.0 * (1.0 - t) ** 2)
        else:
            rampup = torch.ones_like(step)
        self.lr_t.copy_(cfg.lr * rampup)
        weight = (cfg.consistency_weight * rampup).float()
        with torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None):
            total, values = step_losses(
                self.student, self.teacher, self.static, self.rows, cfg, weight, self.rng, self.input_space
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.teacher is not None:
            # eq. 1 at the (step + 1)-th update: alpha = min(1 - 1/(step + 2), decay), as objectives.ema_alpha
            alpha = torch.clamp(1.0 - 1.0 / (step + 2.0), max=cfg.ema_decay).float()
            ema_update(self.teacher, self.student, alpha)
        self.history.index_copy_(0, torch.remainder(self.history_i, self.capacity).reshape(1), values.unsqueeze(0))
        self.history_i.add_(1)
        step.add_(1.0)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: Tensor) -> None:
    """teacher <- alpha teacher + (1 - alpha) student, parameters only, alpha a device scalar (eq. 1)."""
    t_params: list[Tensor] = list(teacher.parameters())
    s_params: list[Tensor] = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(t_params, alpha)
    torch._foreach_add_(t_params, list(torch._foreach_mul(s_params, 1.0 - alpha)))
