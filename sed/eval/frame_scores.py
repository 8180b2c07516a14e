"""Threshold-free frame-level scores: macro average precision of frame probabilities.

One job: compare a split's frame probabilities ``[N, T, C]`` with its frame
targets (the strong labels encoded on the same frame grid,
``sed.data.splits.Split.strong_targets``) without a decision threshold, a
median filter or event decoding. scikit-learn computes each class's average
precision (``sklearn.metrics.average_precision_score``: the step-wise area
under the precision-recall curve over every frame of the split); the score is
their mean over the classes with at least one active frame (a class without
one has no recall to measure). NaN when no class has an active frame.

Why it exists: the event F1 at threshold 0.5 reads ~0 for every model in the
first epochs (few probabilities cross the threshold yet), so it cannot tell
configurations apart early. The frame AP ranks the same models by how they
order frames, which it can do from the first epoch: on the `scarce-far`
benchmark table its rank correlation with the final best event F1 is 0.50 at
epoch 4 against -0.18 for the F1 itself (benchmarks/README.md, "Search
efficiency"). That makes it what ASHA can read at early rungs
(`scheduler.rung_metric`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["frame_average_precision"]


def frame_average_precision(probs: np.ndarray, targets: np.ndarray) -> float:
    """Macro average precision of ``probs`` ``[N, T, C]`` against binary ``targets`` of the same shape."""
    if probs.shape != targets.shape or probs.ndim != 3:
        raise ValueError(
            f"frame probabilities {probs.shape} and targets {targets.shape} must both be [clips, frames, classes]"
        )
    # imported here: sklearn.metrics costs ~1.4 s of CPU to import, paid by every process that imports the
    # trainer (each trial's Ray worker among them) while only runs that compute the frame AP use it
    from sklearn.metrics import average_precision_score

    active = targets.reshape(-1, targets.shape[-1]) > 0.5
    scores = probs.reshape(-1, probs.shape[-1])
    per_class = [
        float(average_precision_score(active[:, c], scores[:, c])) for c in range(active.shape[1]) if active[:, c].any()
    ]
    return float(np.mean(per_class)) if per_class else math.nan
