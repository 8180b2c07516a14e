"""How many trials run at once, and on what: every GPU of the cluster busy at a measured packing.

`pack` turns the space's `resources` and the cluster's nodes into a
`Packing`: each trial's CPUs and GPU share, how many trials fit at once,
which bound set that number, and a sentence that says so (the start-up
line of `search.run`). The rules:

- **GPU share.** `gpu: auto` on a cluster with GPUs gives each trial
  `1 / trials_per_gpu` of a GPU. `trials_per_gpu` comes from `--trials-per-gpu`,
  else the space's `resources.trials_per_gpu`, else `DEFAULT_TRIALS_PER_GPU`
  (measured: below). A numeric `gpu:` in the space is its own packing
  (`gpu: 0.5` = 2 per GPU) and `--trials-per-gpu` replaces it. `gpu: auto`
  on a cluster without GPUs runs on the CPUs; a numeric `gpu > 0` or
  `--trials-per-gpu` there is refused (Ray would leave every trial PENDING).
- **Slots**, counted per node (a trial's CPUs and GPU share must be on one
  node): `min(GPUs x trials_per_gpu, CPUs // cpu)` on a node with GPUs when
  trials use GPUs, `CPUs // cpu` otherwise; summed over the nodes.
- **Trials at once** = min(slots, the space's `max_concurrent` when set);
  a stage with fewer trials runs them all at once (`Packing.at_once`).

`DEFAULT_TRIALS_PER_GPU` and `EAGER_TRIALS_PER_GPU` are measurements, not
guesses (one H200, baseline objective, batch 24, N processes started together;
benchmarks/README.md, "GPU path"). With the CUDA-graph step (`fast_step:
auto`, the default on CUDA) one trial keeps the GPU busy: 73.8 steps/s alone,
a total of 67.4 / 67.6 / 67.6 at 2 / 4 / 8 trials per GPU, so the default is
**one trial per GPU**. The eager step (`fast_step: off`, or `amp: true`)
leaves the GPU idle between launches and gains from sharing it: 46.8 steps/s
alone, 61.1 in total at 4 per GPU, so a space whose trials all run eager
defaults to 4 per GPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sed.errors import UserError

#: Trials sharing one GPU by default, for the CUDA-graph step (the default on CUDA): one
#: trial alone gives the highest total (73.8 steps/s vs 67.4-67.6 for 2-8; benchmarks/README.md, "GPU path").
DEFAULT_TRIALS_PER_GPU = 1
#: ... and for the eager step (`fast_step: off` or `amp: true` in every trial): 4 per GPU
#: (61.1 steps/s in total vs 46.8 for one alone; same table).
EAGER_TRIALS_PER_GPU = 4

#: Where a packing came from, as the start-up line names it.
DEFAULT_SOURCE = (
    f"default {DEFAULT_TRIALS_PER_GPU} per GPU: the CUDA-graph step keeps an H200 busy alone (benchmarks/README.md)"
)
EAGER_SOURCE = (
    f"default {EAGER_TRIALS_PER_GPU} per GPU for the eager step (fast_step: off or amp), "
    "the measured H200 optimum (benchmarks/README.md)"
)


class ClusterError(UserError):
    """The Ray cluster cannot run the space as asked (e.g. GPUs requested, none present)."""


@dataclass(frozen=True)
class Packing:
    """Per-trial resources and how many trials run at once on the cluster, with the reason."""

    cpu: float
    gpu: float
    #: trials at once (the Tuner's max_concurrent_trials)
    max_concurrent: int
    #: trials per GPU (None: trials run on the CPUs)
    trials_per_gpu: int | None = None
    #: slots the cluster offers at this packing, before max_concurrent and the trial count
    slots: int = 0
    cpus: float = 0.0
    gpus: float = 0.0
    nodes: int = 1
    #: what bounds max_concurrent: "gpus", "cpus" or "max_concurrent"
    bound: str = "cpus"
    #: where trials_per_gpu came from
    source: str = ""

    def as_dict(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}

    def at_once(self, trials: int) -> int:
        """Trials running at once for a stage of `trials` trials."""
        return max(1, min(self.max_concurrent, trials))

    def describe(self, trials: int | None = None, stage: str = "search") -> str:
        """One sentence: how many trials run at once, on what, and why."""
        n = self.max_concurrent if trials is None else self.at_once(trials)
        each = f"each {self.cpu:g} CPU" + (f" + {self.gpu:g} GPU" if self.gpu else "")
        if self.gpu and self.trials_per_gpu:
            used = min(self.gpus, math.ceil(n / self.trials_per_gpu))
            what = f"on {used:g} of {self.gpus:g} GPUs, {self.trials_per_gpu} per GPU ({self.source})"
        elif self.gpu:
            what = f"on {min(self.gpus, n * self.gpu):g} of {self.gpus:g} GPUs ({self.gpu:g} GPU per trial)"
        else:
            what = "on the CPUs" + ("" if self.gpus else " (no GPU in the cluster)")
        if trials is not None and trials < self.max_concurrent:
            why = f"the stage has {trials} trials ({self.max_concurrent} could run)"
        elif self.bound == "gpus":
            why = "every GPU busy"
        elif self.bound == "cpus" and self.gpu:
            why = (
                f"bounded by the CPUs: {self.cpus:g} CPUs at {self.cpu:g} per trial "
                f"(the GPUs would take {self._gpu_slots()})"
            )
        elif self.bound == "cpus":
            why = f"{self.cpus:g} CPUs at {self.cpu:g} per trial"
        else:
            why = f"capped by the space's max_concurrent (the cluster has {self.slots} slots)"
        where = f"{_count(self.nodes, 'node')}, {self.cpus:g} CPUs, {self.gpus:g} GPUs"
        return f"{stage}: {n} trials at once {what}, {each}; {why} [cluster: {where}]"

    def _gpu_slots(self) -> int:
        return int(self.gpus * (self.trials_per_gpu or 1)) if self.gpu < 1 else int(self.gpus // self.gpu)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def share_of(trials_per_gpu: int) -> float:
    """The GPU fraction of one of `trials_per_gpu` trials sharing a GPU (floored so they fit exactly)."""
    return 1.0 if trials_per_gpu == 1 else math.floor(1000 / trials_per_gpu) / 1000


def node_resources(nodes: Iterable[Mapping]) -> list[dict[str, float]]:
    """The CPU/GPU totals of each alive node of `ray.nodes()`."""
    out = []
    for node in nodes:
        if node.get("Alive", node.get("alive", True)):
            res = node.get("Resources", {}) or {}
            out.append({"CPU": float(res.get("CPU", 0.0)), "GPU": float(res.get("GPU", 0.0))})
    return out


def pack(
    space_path: object,
    cpu: float,
    gpu: float | str,
    nodes: Sequence[Mapping[str, float]],
    *,
    space_trials_per_gpu: int | None = None,
    flag_trials_per_gpu: int | None = None,
    max_concurrent: int | None = None,
    eager_step: bool = False,
) -> Packing:
    """The packing of a space's trials on `nodes` (dicts with "CPU" and "GPU"); ClusterError if impossible.

    `eager_step`: every trial trains with the eager step (`fast_step: off` or `amp`), whose default
    packing is `EAGER_TRIALS_PER_GPU`; otherwise the CUDA-graph step's `DEFAULT_TRIALS_PER_GPU`.
    """
    where = f"{space_path}: resources"
    cpus = sum(float(n.get("CPU", 0.0)) for n in nodes)
    gpus = sum(float(n.get("GPU", 0.0)) for n in nodes)
    biggest_cpu = max((float(n.get("CPU", 0.0)) for n in nodes), default=0.0)
    if cpu > biggest_cpu:
        raise ClusterError(
            f"{where}.cpu={cpu:g} but no node of the Ray cluster has that many CPUs (largest node: {biggest_cpu:g}, "
            f"cluster: {cpus:g}); a trial could never start. Lower resources.cpu to <= {biggest_cpu:g} or join a "
            "larger cluster with --address"
        )
    if flag_trials_per_gpu is not None and flag_trials_per_gpu < 1:
        raise ClusterError(f"--trials-per-gpu {flag_trials_per_gpu}: give a whole number >= 1")
    tpg: int | None = None
    source = ""
    if flag_trials_per_gpu is not None:
        if gpu != "auto" and float(gpu) == 0:
            raise ClusterError(
                f"--trials-per-gpu {flag_trials_per_gpu}: {where}.gpu is 0 (the space runs on CPUs); "
                "leave the flag out, or set resources.gpu: auto in the space"
            )
        tpg, source = flag_trials_per_gpu, "--trials-per-gpu"
    elif gpu == "auto":
        tpg, source = (
            (space_trials_per_gpu, "resources.trials_per_gpu")
            if space_trials_per_gpu
            else (EAGER_TRIALS_PER_GPU, EAGER_SOURCE)
            if eager_step
            else (DEFAULT_TRIALS_PER_GPU, DEFAULT_SOURCE)
        )
    if tpg is not None and gpus <= 0:
        if flag_trials_per_gpu is not None:
            raise ClusterError(
                f"--trials-per-gpu {flag_trials_per_gpu} but the Ray cluster has no GPU; leave the flag out "
                "(trials then run on the CPUs), or join a cluster with GPUs via --address"
            )
        tpg = None  # gpu: auto on a CPU cluster: the CPUs
    if tpg is not None:
        share = share_of(tpg)
    else:
        share = 0.0 if gpu == "auto" else float(gpu)
        if share > 0 and gpus <= 0:
            raise ClusterError(
                f"{where}.gpu={share:g} but the Ray cluster has no GPU, so every trial would stay PENDING "
                "forever. Use `gpu: auto` (GPU when there is one, CPU otherwise) or `gpu: 0`, or join a "
                "cluster with GPUs via --address"
            )
        biggest_gpu = max((float(n.get("GPU", 0.0)) for n in nodes), default=0.0)
        if share > biggest_gpu:
            raise ClusterError(
                f"{where}.gpu={share:g} but no node has that many GPUs (largest node: {biggest_gpu:g}); "
                "lower resources.gpu"
            )
        if 0 < share < 1:
            tpg, source = int(math.floor(1 / share + 1e-9)), f"resources.gpu={share:g}"
    slots = 0
    gpu_slots = 0
    for node in nodes:
        by_cpu = int(float(node.get("CPU", 0.0)) // cpu)
        if share > 0:
            node_gpus = float(node.get("GPU", 0.0))
            by_gpu = int(node_gpus * tpg) if share < 1 and tpg else int(node_gpus // share)
            gpu_slots += by_gpu
            slots += min(by_cpu, by_gpu)
        else:
            slots += by_cpu
    if slots < 1:
        raise ClusterError(
            f"{where}: no node has both {cpu:g} CPU and {share:g} GPU free for one trial; lower resources.cpu "
            "or resources.gpu, or join a cluster with GPU nodes that have CPUs"
        )
    bound = "gpus" if share > 0 and slots >= gpu_slots else "cpus"
    concurrent = slots
    if max_concurrent is not None and max_concurrent < concurrent:
        concurrent, bound = max_concurrent, "max_concurrent"
    return Packing(
        cpu=cpu,
        gpu=share,
        max_concurrent=concurrent,
        trials_per_gpu=tpg if share > 0 else None,
        slots=slots,
        cpus=cpus,
        gpus=gpus,
        nodes=len(nodes),
        bound=bound,
        source=source,
    )
