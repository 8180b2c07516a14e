"""The toy labelled batch the objective tests share: a quarter weak clips, a quarter strong, the rest unlabeled."""

from __future__ import annotations

import torch

from sed.training.objectives import Batch


def make_batch(b: int = 8, c: int = 3, x: torch.Tensor | None = None) -> Batch:
    """Seeded targets (strong [b, 157, c], weak [b, c]) and masks; `x` defaults to N(0, 1) features [b, 628, 128]."""
    torch.manual_seed(1)
    q = b // 4
    strong_mask = torch.zeros(b, dtype=torch.bool)
    weak_mask = torch.zeros(b, dtype=torch.bool)
    weak_mask[:q] = True
    strong_mask[b - q :] = True
    strong_t = (torch.rand(b, 157, c) > 0.7).float() * strong_mask.view(b, 1, 1)
    weak_t = (torch.rand(b, c) > 0.5).float() * (weak_mask | strong_mask).view(b, 1)
    features = torch.randn(b, 628, 128) if x is None else x
    return Batch(features, strong_t, weak_t, strong_mask, weak_mask)
