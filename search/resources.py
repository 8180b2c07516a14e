"""Per-trial resources: what each trial asks of the Ray cluster, derived from the space and the cluster.

Checked before any trial starts, because Ray never refuses an impossible
request -- it leaves the trial PENDING forever (docs/dependencies.md, "Ray
2.60 Tune + Optuna 5.0").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .space import Space


class ClusterError(ValueError):
    """The Ray cluster cannot run the space as asked (e.g. GPUs requested, none present)."""


@dataclass(frozen=True)
class TrialResources:
    """CPUs and GPU share of one trial, and how many trials run at once."""

    cpu: float
    gpu: float
    max_concurrent: int

    def as_dict(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}


def derive_resources(space: Space, cluster: Mapping[str, float]) -> TrialResources:
    """Per-trial CPU/GPU and concurrency from the space and what the cluster has.

    `gpu: auto` -> min(1, GPUs / max_concurrent) when the cluster has GPUs, else 0.
    A numeric `gpu > 0` on a cluster without GPUs is refused: Ray would leave
    every trial PENDING forever (docs/dependencies.md).
    """
    cpus = float(cluster.get("CPU", 0.0))
    gpus = float(cluster.get("GPU", 0.0))
    where = f"{space.path}: resources"
    if space.resources.cpu > cpus:
        raise ClusterError(
            f"{where}.cpu={space.resources.cpu:g} but the Ray cluster has {cpus:g} CPUs; a trial could never "
            f"start. Lower resources.cpu to <= {cpus:g} or join a larger cluster with --address"
        )
    max_concurrent = space.max_concurrent or max(1, int(cpus // space.resources.cpu))
    gpu = space.resources.gpu
    if gpu == "auto":
        gpu = min(1.0, gpus / max_concurrent) if gpus >= 1 else 0.0
        if gpu > 0 and gpu < 1:
            gpu = math.floor(gpu * 1000) / 1000  # avoid 0.333.. * 3 > 1 rounding refusals
    else:
        gpu = float(gpu)
        if gpu > 0 and gpus <= 0:
            raise ClusterError(
                f"{where}.gpu={gpu:g} but the Ray cluster has no GPU, so every trial would stay PENDING "
                "forever. Use `gpu: auto` (GPU when there is one, CPU otherwise) or `gpu: 0`, or join a "
                "cluster with GPUs via --address"
            )
        if gpu > gpus:
            raise ClusterError(f"{where}.gpu={gpu:g} but the cluster has {gpus:g} GPUs; lower resources.gpu")
    return TrialResources(cpu=space.resources.cpu, gpu=gpu, max_concurrent=max_concurrent)
