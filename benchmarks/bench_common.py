"""Pieces shared by the benchmark scripts: a random mixed batch and one training step."""

from __future__ import annotations

import random

import numpy as np
import torch

from sed.augment.perturb import LogMelSpace  # noqa: E402
from sed.config import TrainConfig  # noqa: E402
from sed.features.scaler import Scaler  # noqa: E402
from sed.nn.model import build_model  # noqa: E402
from sed.training.objectives import Batch, compute_losses, update_ema  # noqa: E402


def random_batch(batch: int, device: torch.device | str = "cpu", n_classes: int = 10) -> Batch:
    """A [batch, 628, 128] batch with the paper's parts: weak 1/4, unlabeled 1/2, strong 1/4."""
    q = batch // 4
    weak = torch.zeros(batch, dtype=torch.bool)
    strong = torch.zeros(batch, dtype=torch.bool)
    weak[:q] = True
    strong[batch - q :] = True
    return Batch(
        torch.randn(batch, 628, 128),
        (torch.rand(batch, 157, n_classes) > 0.8).float(),
        (torch.rand(batch, n_classes) > 0.5).float(),
        strong,
        weak,
    ).to(torch.device(device))


class ObjectiveStep:
    """One training step of `cfg`'s objective: compute_losses + backward + Adam (+ EMA for mt)."""

    def __init__(self, cfg: TrainConfig, batch: Batch, amp: bool = False) -> None:
        torch.manual_seed(0)
        device = batch.features.device
        self.cfg = cfg
        self.amp = amp
        self.student = build_model(cfg, batch.weak_targets.shape[1]).to(device).train()
        self.teacher = None
        if cfg.regularization == "mt":
            self.teacher = build_model(cfg, batch.weak_targets.shape[1]).to(device).train()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=1e-3)
        self.batch = batch
        self.rng = random.Random(0)
        self.step = 0
        # snr_noise goes back to dB through a scaler: one of log-mel-like size (the batch is N(0, 1)).
        n_mels = batch.features.shape[-1]
        self.input_space = LogMelSpace(Scaler(np.full(n_mels, -40.0), np.full(n_mels, 12.0)))

    def __call__(self) -> dict[str, float]:
        with torch.autocast(self.batch.features.device.type, dtype=torch.bfloat16, enabled=self.amp):
            terms = compute_losses(self.student, self.teacher, self.batch, self.cfg, 1.0, self.rng, self.input_space)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.optimizer.step()
        if self.teacher is not None:
            update_ema(self.teacher, self.student, self.step + 1, self.cfg.ema_decay)
        self.step += 1
        return terms.as_floats()
