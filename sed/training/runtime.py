"""Process-wide settings of a run, in one explicit call: `configure_process(config)`.

One job. Torch's thread count, the host-memory policy (`sed.training.host_memory`,
CPU only) and the device choice belong to the *process*, not to one run: Ray
reuses a worker process for several trials, so these are set by one named
call at the start of every run (the Trainer makes it first thing) rather
than hidden among other set-up. `seed_everything` seeds the global RNGs a
run draws from (its state is saved in the run's checkpoints).
"""

from __future__ import annotations

import random

import numpy as np
import torch

from sed.config import TrainConfig
from sed.errors import ConfigError
from sed.training.host_memory import reuse_freed_memory

__all__ = ["configure_process", "pick_device", "seed_everything"]


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when torch sees a GPU, else the CPU; 'cuda' without one is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but torch sees no CUDA device; use device=auto or cpu")
    return torch.device(name)


def configure_process(config: TrainConfig) -> torch.device:
    """Set this process's threads and host-memory policy for `config`; return its device."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = pick_device(config.device)
    if device.type == "cpu" and config.reuse_host_memory:
        reuse_freed_memory()
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
