"""Multiply-accumulates of one forward pass over a 10 s clip (DCASE task 4 reports MACs per 10 s since 2023).

One job: count the MACs of a run's CRNN on one 10 s clip (628 frames x
``n_mels`` bands) with ``torch.utils.flop_counter.FlopCounterMode``: MACs =
its FLOPs / 2, i.e. the multiply-adds of the convolutions, the GRU's matrix
products and the linear layers, biases not counted. The counter has no formula
for the GRU op and would count it through its decomposition, a matrix product
per step and direction (0.5-0.6 CPU-s of each trial process's first report
on a 2-core CPU, 628 frames); ``gru_flops`` gives it the same number in closed
form from the weight shapes (0.05-0.13 CPU-s in all; benchmarks/README.md),
and the GRU runs as one op (``tests/test_energy_macs.py`` checks that both
counts agree). Element-wise work (BatchNorm, the gated
unit's sigmoid and product, pooling, softmax) is not a MAC and is left out, as
the usual counters (thop, ptflops) do for the 2023 baseline's 930.9 M.
``tests/test_energy_macs.py`` checks the count of the default CRNN against a
hand count of its layers.

The model is built afresh from the configuration (on the CPU, eval mode, PyTorch's
default init: the count does not depend on the weights), so counting never touches
a model being trained (its BatchNorm statistics) nor torch's global random
stream (the init draws happen under ``torch.random.fork_rng``); the count is
cached per architecture (a worker reused by Ray for the next trial counts once).
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from sed.constants import N_FRAMES
from sed.nn.model import CRNN, CRNNConfig, CRNNFields

__all__ = ["macs_per_10s"]


def macs_per_10s(config: CRNNFields, n_classes: int) -> int:
    """MACs of the CRNN of `config` (a TrainConfig) on one 10 s clip (cached per architecture)."""
    model_config = CRNNConfig.from_fields(config, n_classes)
    # the initialisation changes no count and the reference one costs seconds for a full-size model
    return _count(dataclasses.replace(model_config, weight_init="torch"))


def gru_flops(
    input: torch.Size,
    hx: torch.Size,
    params: list[torch.Size],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
    out_shape: object = None,
    **kwargs: object,
) -> int:
    """FLOPs of ``aten.gru.input`` as its decomposition's matrix products count them (2 per multiply-add):
    per layer and direction, the input map over every frame (``T x B x in x 3H``) and the hidden map at
    each step (``T x B x H x 3H``); biases and the gates' element-wise work not counted."""
    steps = 1
    for size in input[:-1]:  # [T, B, in], [B, T, in] or unbatched [T, in]: frames x batch
        steps *= int(size)
    per_direction = 4 if has_biases else 2  # w_ih, w_hh[, b_ih, b_hh]
    flops = 0
    for first in range(0, len(params), per_direction):
        w_ih, w_hh = params[first], params[first + 1]
        flops += 2 * steps * (int(w_ih[0]) * int(w_ih[1]) + int(w_hh[0]) * int(w_hh[1]))
    return flops


@functools.lru_cache(maxsize=16)
def _count(model_config: CRNNConfig) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    # building the model draws its initial weights from torch's global generator: under fork_rng,
    # so that counting leaves the stream of the run that asked for it as it was (the count is
    # cached, so only a process's first run would otherwise see a shifted stream)
    with torch.random.fork_rng(devices=[]):
        model = CRNN(model_config).eval()
    clip = torch.zeros(1, N_FRAMES, int(model_config.n_mels))
    # keyed twice: the op itself (found there, the counter runs it instead of decomposing it) and
    # its overload packet (what the counter looks the formula up by)
    mapping = {torch.ops.aten.gru.input: gru_flops, torch.ops.aten.gru: gru_flops}
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(clip)
    return int(counter.get_total_flops()) // 2
