"""Filling the cluster (search.packing): trials at once, GPU share and the reason, from the space and the nodes."""

from __future__ import annotations

import pytest

from search.packing import DEFAULT_TRIALS_PER_GPU, EAGER_TRIALS_PER_GPU, ClusterError, node_resources
from search.resources import derive_resources
from search.space import SpaceError, load_space, parse_space

SPACE = """
name: pk
metric: val_macro_f1
num_samples: 32
scheduler: {kind: asha, max_epochs: 3, grace_period: 1}
fixed: {regularization: l2, rampup_epochs: 0}
params:
  augmentation: {choice: [random, mixup]}
"""


def space(resources: str = "", extra: str = ""):
    return parse_space(SPACE + (f"resources: {resources}\n" if resources else "") + extra, "pk.yaml")


def test_issue_cluster_fills_every_gpu_at_the_measured_packing():
    # the issue's case: 64 CPUs and 8 GPUs ran 2 trials (max_concurrent: 2) or 64 at 1/8 GPU
    # the CUDA-graph step (default) keeps a GPU busy alone: one trial per GPU, every GPU busy
    packing = derive_resources(space(), [{"CPU": 64.0, "GPU": 8.0}])
    assert DEFAULT_TRIALS_PER_GPU == 1
    assert (packing.gpu, packing.max_concurrent, packing.bound) == (1.0, 8, "gpus")
    line = packing.describe(32)
    assert "8 trials at once on 8 of 8 GPUs, 1 per GPU (default 1 per GPU: the CUDA-graph step" in line
    assert "every GPU busy" in line
    # 256 CPUs / 32 GPUs over 4 nodes: 32 at once
    nodes = [{"CPU": 64.0, "GPU": 8.0}] * 4
    assert derive_resources(space(), nodes).max_concurrent == 32
    # the eager step (fast_step: off, or amp) gains from sharing a GPU: 4 per GPU
    for fixed in ("fast_step: off", "amp: true"):
        text = SPACE.replace("fixed: {regularization: l2", "fixed: {" + fixed + ", regularization: l2")
        eager = derive_resources(parse_space(text, "pk.yaml"), [{"CPU": 64.0, "GPU": 8.0}])
        assert EAGER_TRIALS_PER_GPU == 4
        assert (eager.gpu, eager.max_concurrent, eager.trials_per_gpu) == (0.25, 32, 4)
        assert "for the eager step" in eager.describe(32)


def test_cpus_num_samples_and_max_concurrent_bound_it():
    few_cpus = derive_resources(space("{cpu: 1, gpu: auto, trials_per_gpu: 4}"), [{"CPU": 6.0, "GPU": 2.0}])
    assert (few_cpus.max_concurrent, few_cpus.bound) == (6, "cpus")
    assert "bounded by the CPUs: 6 CPUs at 1 per trial (the GPUs would take 8)" in few_cpus.describe()
    # counted per node: a GPU node without CPUs to spare adds nothing, a CPU node no GPU trials
    nodes = [{"CPU": 2.0, "GPU": 4.0}, {"CPU": 30.0, "GPU": 0.0}]
    assert derive_resources(space(), nodes).max_concurrent == 2
    capped = derive_resources(space(extra="max_concurrent: 3\n"), [{"CPU": 64.0, "GPU": 8.0}])
    assert (capped.max_concurrent, capped.bound) == (3, "max_concurrent")
    assert "capped by the space's max_concurrent (the cluster has 8 slots)" in capped.describe()
    packing = derive_resources(space(), [{"CPU": 64.0, "GPU": 8.0}])
    assert packing.at_once(6) == 6
    assert "6 trials at once on 6 of 8 GPUs" in packing.describe(6, "final")


def test_packing_from_space_flag_and_numeric_share():
    nodes = [{"CPU": 64.0, "GPU": 8.0}]
    two = derive_resources(space("{cpu: 1, gpu: auto, trials_per_gpu: 2}"), nodes)
    assert (two.gpu, two.max_concurrent, two.source) == (0.5, 16, "resources.trials_per_gpu")
    flag = derive_resources(space("{cpu: 1, gpu: auto, trials_per_gpu: 2}"), nodes, trials_per_gpu=3)
    assert (flag.gpu, flag.max_concurrent, flag.trials_per_gpu) == (0.333, 24, 3)
    numeric = derive_resources(space("{cpu: 2, gpu: 0.5}"), nodes)
    assert (numeric.gpu, numeric.max_concurrent, numeric.trials_per_gpu) == (0.5, 16, 2)
    whole = derive_resources(space("{cpu: 1, gpu: 2}"), nodes)
    assert (whole.gpu, whole.max_concurrent) == (2.0, 4)
    cpu_only = derive_resources(space(), [{"CPU": 2.0}])
    assert (cpu_only.gpu, cpu_only.max_concurrent) == (0.0, 2)
    assert "2 trials at once on the CPUs (no GPU in the cluster)" in cpu_only.describe()


def test_refusals_name_what_to_change():
    with pytest.raises(ClusterError, match=r"--trials-per-gpu 4 but the Ray cluster has no GPU; leave the flag out"):
        derive_resources(space(), [{"CPU": 8.0}], trials_per_gpu=4)
    with pytest.raises(ClusterError, match=r"--trials-per-gpu 2: pk.yaml: resources.gpu is 0"):
        derive_resources(space("{cpu: 1, gpu: 0}"), [{"CPU": 8.0, "GPU": 1.0}], trials_per_gpu=2)
    with pytest.raises(ClusterError, match=r"resources.gpu=2 but no node has that many GPUs \(largest node: 1\)"):
        derive_resources(space("{cpu: 1, gpu: 2}"), [{"CPU": 8.0, "GPU": 1.0}] * 2)
    with pytest.raises(SpaceError, match=r"resources.trials_per_gpu: is for gpu: auto; gpu: 0.5"):
        space("{cpu: 1, gpu: 0.5, trials_per_gpu: 2}")
    with pytest.raises(SpaceError, match=r"resources.trials_per_gpu: 0 must be >= 1"):
        space("{cpu: 1, trials_per_gpu: 0}")


def test_node_resources_reads_alive_nodes_of_ray_nodes():
    nodes = [
        {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0, "memory": 1e9}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
        {"Alive": True, "Resources": {"CPU": 2.0}},
    ]
    assert node_resources(nodes) == [{"CPU": 4.0, "GPU": 2.0}, {"CPU": 2.0, "GPU": 0.0}]


def test_no_shipped_space_pins_max_concurrent():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[1].glob("spaces/*.yaml")):
        loaded = load_space(path)
        assert loaded.max_concurrent is None, path
        assert loaded.resources.gpu == "auto", path
