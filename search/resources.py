"""Per-trial resources: what each trial asks of the Ray cluster, derived from the space and the cluster.

Checked before any trial starts, because Ray never refuses an impossible
request -- it leaves the trial PENDING forever (docs/dependencies.md, "Ray
2.60 Tune + Optuna 5.0"). The rules (every GPU busy at a measured packing,
bounded by the CPUs and the space's `max_concurrent`) are in
`search.packing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .packing import ClusterError, Packing, pack
from .space import Space

#: What a trial gets and how many run at once (the name the stages and the tuner use).
TrialResources = Packing

__all__ = ["ClusterError", "TrialResources", "derive_resources"]


def derive_resources(
    space: Space,
    cluster: Mapping[str, float] | Sequence[Mapping[str, float]],
    trials_per_gpu: int | None = None,
) -> TrialResources:
    """Per-trial CPU/GPU and concurrency from the space and the cluster.

    `cluster`: one mapping of totals (`ray.cluster_resources()`, read as one
    node) or one mapping per node (`search.packing.node_resources(ray.nodes())`).
    `trials_per_gpu`: the `--trials-per-gpu` flag. Refusals are `ClusterError`s
    naming the space key or flag to change.
    """
    nodes = [cluster] if isinstance(cluster, Mapping) else list(cluster)
    return pack(
        space.path,
        space.resources.cpu,
        space.resources.gpu,
        nodes,
        space_trials_per_gpu=space.resources.trials_per_gpu,
        flag_trials_per_gpu=trials_per_gpu,
        max_concurrent=space.max_concurrent,
        eager_step=eager_step(space),
    )


def eager_step(space: Space) -> bool:
    """Whether every trial of the space trains with the eager step on a GPU (`fast_step: off` or
    `amp: true` fixed; TrainConfig.fast_step). A space that searches either key gets the graph
    step's packing; `resources.trials_per_gpu` or `--trials-per-gpu` set another."""
    return space.fixed.get("fast_step") in ("off", False) or bool(space.fixed.get("amp", False))
