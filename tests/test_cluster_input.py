"""Bad cluster input gets one clear message naming what to change (issue 22, item 5)."""

from __future__ import annotations

import pytest
from clusters import REPO, free_port

from search.cluster_checks import _node_check, check_gpu_memory, trial_memory_gib
from search.packing import ClusterError
from search.run import main

TINY = str(REPO / "tests" / "spaces" / "tiny.yaml")


def test_unreachable_address_is_refused_at_once(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["--space", TINY, "--address", address, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"--address {address}: no Ray cluster answers there" in err and "ray start --head --port" in err
    assert not (tmp_path / "out").exists()
    assert main(["--space", TINY, "--plan", "--address", address]) == 2
    assert "no Ray cluster answers there" in capsys.readouterr().err


def test_a_packing_larger_than_a_gpu_holds_is_refused():
    assert trial_memory_gib(24) == 2.1 and trial_memory_gib(1536) == 125.6
    assert trial_memory_gib(480) == pytest.approx(15.8 + (62.8 - 15.8) * (480 - 192) / (768 - 192))
    check_gpu_memory(4, 24, 139.0, "x.yaml: resources")  # the default on an H200: 8.4 GiB of 139
    with pytest.raises(
        ClusterError,
        match=r"x.yaml: resources: 8 trials per GPU x ~15.8 GiB each \(batch 192, "
        r"measured peak\) = 126 GiB, more than the 80 GiB of one GPU; lower trials_per_gpu "
        r"\(resources.trials_per_gpu or --trials-per-gpu\) to <= 5",
    ):
        check_gpu_memory(8, 192, 80.0, "x.yaml: resources")
    check_gpu_memory(64, 24, None, "x")  # logical GPUs (no CUDA): no figure, no check


def test_node_storage_check_names_what_a_node_cannot_do(tmp_path):
    (tmp_path / "m").write_text("token")
    assert _node_check(str(tmp_path), "m", "token") is None
    assert "is another file than the driver's" in _node_check(str(tmp_path), "m", "other")
    assert "cannot read" in _node_check(str(tmp_path / "missing"), "m", "token")


def test_gpus_asked_of_a_cluster_without_gpus(tmp_path, capsys):
    # --trials-per-gpu on a CPU-only cluster (here: --plan for 8 CPUs, no GPU; nothing started)
    auto = tmp_path / "auto.yaml"
    auto.write_text((REPO / "tests" / "spaces" / "tiny.yaml").read_text().replace("gpu: 0}", "gpu: auto}"))
    assert main(["--space", str(auto), "--plan", "--plan-cluster", "8:0", "--trials-per-gpu", "4"]) == 2
    assert "--trials-per-gpu 4 but the Ray cluster has no GPU; leave the flag out" in capsys.readouterr().err
    # tiny.yaml has gpu: 0 (CPU trials): a packing flag contradicts it
    assert main(["--space", TINY, "--plan", "--plan-cluster", "8:2", "--trials-per-gpu", "4"]) == 2
    assert "resources.gpu is 0 (the space runs on CPUs)" in capsys.readouterr().err
    # a numeric GPU share where there is none (the run itself: test_search_cli.py)
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text((REPO / "tests" / "spaces" / "tiny.yaml").read_text().replace("gpu: 0}", "gpu: 0.5}"))
    assert main(["--space", str(gpu), "--plan", "--plan-cluster", "8:0"]) == 2
    assert "resources.gpu=0.5 but the Ray cluster has no GPU" in capsys.readouterr().err
