"""Multiply-accumulates of one forward pass over a 10 s clip (DCASE task 4 reports MACs per 10 s since 2023).

One job: count the MACs of a run's CRNN on one 10 s clip (628 frames x
``n_mels`` bands) with ``torch.utils.flop_counter.FlopCounterMode``: MACs =
its FLOPs / 2, i.e. the multiply-adds of the convolutions, the GRU's matrix
products (PyTorch's GRU runs as ``addmm`` per gate block, all counted) and the
linear layers, biases not counted. Element-wise work (BatchNorm, the gated
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


@functools.lru_cache(maxsize=16)
def _count(model_config: CRNNConfig) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    # building the model draws its initial weights from torch's global generator: under fork_rng,
    # so that counting leaves the stream of the run that asked for it as it was (the count is
    # cached, so only a process's first run would otherwise see a shifted stream)
    with torch.random.fork_rng(devices=[]):
        model = CRNN(model_config).eval()
    clip = torch.zeros(1, N_FRAMES, int(model_config.n_mels))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(clip)
    return int(counter.get_total_flops()) // 2
