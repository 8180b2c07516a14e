"""`--plan` of `python -m search.run`: the cluster to plan for, the data sizes, then `search.plan`'s table.

The cluster is the one `--address` names (joined, nothing started on it),
a cluster described with `--plan-cluster CPUS:GPUS[:NODES]` (e.g. `64:8`
for one node with 8 H200s), or this machine (its CPUs and CUDA devices;
Ray is not started). `--probe` replaces the measured tables by step
times taken on that cluster now (`search.probe`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sed.errors import UserError

from .packing import ClusterError, node_resources
from .plan import (
    DRIVER_OVERHEAD_S,
    EMBEDDED_BUILD_S,
    DataSizes,
    dataset_sizes,
    desed2020_sizes,
    embedded_sizes,
    format_plan,
    plan_stages,
    table_cost,
)
from .plan_groups import plan_group_stages
from .resources import derive_resources
from .space import Space


class PlanError(UserError):
    """A --plan option that cannot be used; the message says which and how."""


def parse_cluster(text: str) -> list[dict[str, float]]:
    """`CPUS:GPUS[:NODES]` -> that many equal nodes."""
    parts = text.split(":")
    try:
        cpus, gpus = float(parts[0]), float(parts[1])
        nodes = int(parts[2]) if len(parts) > 2 else 1
    except (ValueError, IndexError):
        raise PlanError(f"--plan-cluster {text!r}: give CPUS:GPUS[:NODES] per node, e.g. 64:8 or 32:4:2") from None
    if cpus <= 0 or gpus < 0 or nodes < 1 or len(parts) > 3:
        raise PlanError(f"--plan-cluster {text!r}: CPUs > 0, GPUs >= 0, nodes >= 1 (e.g. 64:8)")
    return [{"CPU": cpus, "GPU": gpus}] * nodes


def local_nodes() -> list[dict[str, float]]:
    import torch

    return [{"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}]


def plan_sizes(space: Space, data: str | None, plan_data: str | None, cache_dir: str | None) -> tuple[DataSizes, float]:
    """The data sizes and the seconds of building data first (0 when it is there)."""
    cfg = space.base_config()
    if plan_data == "desed2020":
        return desed2020_sizes(cfg.val_fraction), 0.0
    if data:
        return dataset_sizes(cfg, data), 0.0
    from sed.data.synth import embedded_dir

    built = (embedded_dir(cfg.embedded_size, cfg.embedded_seed, cache_dir) / "sedtune_embedded.json").is_file()
    return embedded_sizes(cfg), 0.0 if built else EMBEDDED_BUILD_S


def run_plan(args: Any, space: Space, address: str | None) -> int:
    """Print the plan; 0, or 2 with a message for a cluster or option that cannot be used."""
    import ray

    try:
        if address:
            from .tuner import start_ray

            start_ray(address, debug=False)
            nodes = node_resources(ray.nodes())
        elif args.plan_cluster:
            nodes = parse_cluster(args.plan_cluster)
        else:
            nodes = local_nodes()
        packing = derive_resources(space, nodes, args.trials_per_gpu)
        sizes, build_s = plan_sizes(
            space,
            str(args.data) if args.data else None,
            args.plan_data,
            str(args.cache_dir) if args.cache_dir else None,
        )
        cores = int(sum(n["CPU"] for n in nodes))
        notes = []
        if args.probe:
            from .probe import probe_cost

            cost, rates = probe_cost(space, packing, args, local=not address and not args.plan_cluster)
        else:
            cost, rates = table_cost(packing, sizes, cores)
            if not address and not args.plan_cluster and os.getloadavg()[0] > cores:
                notes.append(
                    f"this machine is busy (load average {os.getloadavg()[0]:.1f} on {cores} cores): "
                    "the measured rates are for an idle one; --probe times it as it is now"
                )
        stages = (plan_group_stages if space.groups else plan_stages)(space, packing, sizes, cost)
        print(format_plan(space, packing, sizes, stages, rates, DRIVER_OVERHEAD_S + build_s, notes), flush=True)
        return 0
    except (ClusterError, PlanError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if address and ray.is_initialized():
            ray.shutdown()
