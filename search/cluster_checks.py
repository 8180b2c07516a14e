"""Checks of the cluster before any trial starts: storage every node can write, GPU memory for the packing.

- `check_storage_on_nodes`: Ray 2.x keeps one experiment folder that every
  node's trials write their checkpoints and files to, so a local `--out`
  on a cluster of several nodes must be a path every node sees. The driver
  writes a marker file there; a task pinned to each alive node must read it
  back and write a file beside it. A node that cannot is named, with what
  to change.
- `check_gpu_memory`: trials sharing a GPU each hold their model,
  optimiser state and activations; a packing whose estimated need exceeds
  the GPU's memory is refused. The need per trial is the measured peak of
  the full-size CRNN on an H200 (benchmarks/README.md, "GPU path": 2.1 GiB
  at batch 24, 15.8 GiB at 192, 62.8 GiB at 768, 125.6 GiB at 1536),
  interpolated in the batch size; the GPU's memory is read on a GPU node
  (`gpu_memory_gib`; None on logical GPUs without CUDA, and the check is
  skipped).
"""

from __future__ import annotations

import math
import os
import secrets
import uuid
from pathlib import Path

from .packing import ClusterError

#: Peak GPU memory (GiB) of one full-size training process per batch size, measured on an H200.
PEAK_GIB_BY_BATCH: dict[int, float] = {24: 2.1, 192: 15.8, 768: 62.8, 1536: 125.6}
MARKER = ".sedtune-storage-check"


def trial_memory_gib(batch_size: int) -> float:
    """Estimated peak GPU memory of one trial at `batch_size` (linear between the measured peaks)."""
    points = sorted(PEAK_GIB_BY_BATCH.items())
    if batch_size <= points[0][0]:
        return points[0][1]
    for (b0, m0), (b1, m1) in zip(points, points[1:]):
        if batch_size <= b1:
            return m0 + (m1 - m0) * (batch_size - b0) / (b1 - b0)
    (b0, m0), (b1, m1) = points[-2], points[-1]
    return m1 + (m1 - m0) * (batch_size - b1) / (b1 - b0)


def check_gpu_memory(trials_per_gpu: int | None, batch_size: int, gpu_gib: float | None, where: str) -> None:
    """Refuse a packing whose trials need more memory than one GPU has (nothing to check without a figure)."""
    if not trials_per_gpu or gpu_gib is None:
        return
    need = trials_per_gpu * trial_memory_gib(batch_size)
    if need > gpu_gib:
        fits = max(1, math.floor(gpu_gib / trial_memory_gib(batch_size)))
        raise ClusterError(
            f"{where}: {trials_per_gpu} trials per GPU x ~{trial_memory_gib(batch_size):.1f} GiB each (batch "
            f"{batch_size}, measured peak) = {need:.0f} GiB, more than the {gpu_gib:.0f} GiB of one GPU; lower "
            f"trials_per_gpu (resources.trials_per_gpu or --trials-per-gpu) to <= {fits}, or batch_size"
        )


def gpu_memory_gib(share: float) -> float | None:
    """Total memory of the GPU a task with `share` of one gets (GiB), or None without CUDA there."""
    import ray

    @ray.remote(num_cpus=0, num_gpus=max(share, 0.001))
    def query() -> float | None:
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.get_device_properties(0).total_memory / 2**30

    return ray.get(query.remote(), timeout=120)


def _node_check(folder: str, marker_name: str, token: str) -> str | None:
    """On a node: None if the marker reads back `token` and a file can be written beside it, else why not."""
    import socket

    marker = Path(folder) / marker_name
    host = socket.gethostname()
    try:
        seen = marker.read_text()
    except OSError as exc:
        return f"{host}: cannot read {marker} ({exc})"
    if seen != token:
        return f"{host}: {marker} is another file than the driver's (a different disk at the same path)"
    probe = Path(folder) / f".sedtune-write-{uuid.uuid4().hex}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return f"{host}: cannot write in {folder} ({exc})"
    return None


def check_storage_on_nodes(folder: Path, nodes: list[dict] | None = None, timeout: float = 120.0) -> int:
    """Every alive node of the Ray cluster must read the driver's marker in `folder` and write there.

    Returns the number of nodes checked; raises ClusterError naming the nodes that cannot.
    `nodes`: `ray.nodes()` (read when None). A one-node cluster is the driver's machine: not checked.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in (nodes if nodes is not None else ray.nodes()) if n.get("Alive")]
    if len(nodes) <= 1:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    marker_name = f"{MARKER}-{os.getpid()}"
    marker = folder / marker_name
    marker.write_text(token)
    try:
        check = ray.remote(num_cpus=0)(_node_check)
        refs = {
            node["NodeID"]: check.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            ).remote(str(folder), marker_name, token)
            for node in nodes
        }
        problems = []
        for node_id, ref in refs.items():
            try:
                problem = ray.get(ref, timeout=timeout)
            except Exception as exc:  # a node that never answers is as bad as one that cannot write
                problem = f"no answer ({type(exc).__name__})"
            if problem:
                problems.append(f"node {node_id[:12]}: {problem}")
    finally:
        marker.unlink(missing_ok=True)
    if problems:
        raise ClusterError(
            f"--out {folder.parent}: not every node of the Ray cluster can use it ({'; '.join(problems)}). Put "
            "--out on storage every node mounts at the same path (NFS, a cluster file system), or run on one node"
        )
    return len(nodes)


def preflight(space_path: object, batch_size: int, resources: object, out: Path, remote: str | None = None) -> None:
    """The checks of a run on the cluster it joined: storage on every node, GPU memory for the packing."""
    if remote:
        checked = check_uri_on_nodes(remote)
        print(
            f"sedtune: {remote} checked from the driver and {checked} node(s): each writes, reads back and "
            "deletes a marker there",
            flush=True,
        )
    else:
        checked = check_storage_on_nodes(out)
        if checked:
            print(
                f"sedtune: {out} checked on {checked} nodes: each reads the driver's marker file and writes there",
                flush=True,
            )
    gpu = getattr(resources, "gpu", 0.0)
    if gpu and 0 < gpu < 1:
        check_gpu_memory(
            getattr(resources, "trials_per_gpu", None), batch_size, gpu_memory_gib(gpu), f"{space_path}: resources"
        )


def check_uri_on_nodes(uri: str, timeout: float = 120.0) -> int:
    """A URI --out must be writable from the driver and from every alive node (credentials, endpoint, network)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .remote_storage import probe

    problem = probe(uri)
    if problem:
        raise ClusterError(
            f"--out {uri}: the driver {problem}; check the URI and this machine's credentials "
            "(e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)"
        )
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    check = ray.remote(num_cpus=0)(probe)
    refs = {
        n["NodeID"]: check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            uri
        )
        for n in nodes
    }
    problems = []
    for node_id, ref in refs.items():
        try:
            found = ray.get(ref, timeout=timeout)
        except Exception as exc:
            found = f"no answer ({type(exc).__name__})"
        if found:
            problems.append(f"node {node_id[:12]}: {found}")
    if problems:
        raise ClusterError(
            f"--out {uri}: not every node of the Ray cluster can write there ({'; '.join(problems)}); "
            "give every node the same credentials and endpoint (environment of `ray start`)"
        )
    return len(nodes)
