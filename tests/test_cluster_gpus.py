"""Trials packed on GPUs, tested without GPUs: a one-node Ray cluster with logical GPUs (`ray.init(num_gpus=2)`).

Ray hands logical GPUs out exactly as real ones (`ray.get_gpu_ids()`,
`CUDA_VISIBLE_DEVICES`) while torch runs on the CPU, so these tests see the
packing of `search.packing` as a GPU cluster gets it: the number of trials
running at once equals the number promised, no GPU holds more trials than
the packing, every trial records its GPU ids in the leaderboards, and the
final stage packs the same way. The two-node case: tests/test_search_cluster.py.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from clusters import gpu_space_text, max_overlap

from search.run import main

pytestmark = pytest.mark.slow  # Ray end-to-end: the inner loop runs -m "not slow"


@pytest.fixture(scope="module")
def gpu_ray():
    import ray

    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.timeout(400)
def test_one_node_two_logical_gpus_every_gpu_at_its_packing(gpu_ray, tmp_path, capsys, session_cache, tiny_data_root):
    space = tmp_path / "gpus.yaml"
    space.write_text(gpu_space_text(num_samples=4, final=True, trials_per_gpu=2))
    out = tmp_path / "out"
    code = main(
        [
            "--space",
            str(space),
            "--out",
            str(out),
            "--no-report",
            "--data",
            str(tiny_data_root),
            "--cache-dir",
            str(session_cache),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert (
        "search: 4 trials at once on 2 of 2 GPUs, 2 per GPU (resources.trials_per_gpu), each 1 CPU + 0.5 GPU; "
        "every GPU busy [cluster: 1 node, 4 CPUs, 2 GPUs]" in printed
    )
    assert "final: 4 trials at once on 2 of 2 GPUs" in printed
    exp = out / "gpus"
    concurrency = json.loads((exp / "concurrency.json").read_text())
    for stage in ("search", "final"):
        assert {k: concurrency[stage][k] for k in ("peak_running", "promised", "trials")} == {
            "peak_running": 4,
            "promised": 4,
            "trials": 4,
        }, stage
        assert len(concurrency[stage]["scheduled_at"]) == 4
    for name in ("search.parquet", "final.parquet"):
        board = pd.read_parquet(exp / name)
        assert len(board) == 4 and set(board["status"]) == {"COMPLETED"}, name
        assert set(board["gpu_ids"]) == {"0", "1"}, name  # one id each; both GPUs used
        assert board["node_id"].nunique() == 1
        for _, group in board.groupby("gpu_ids"):
            assert max_overlap(group) <= 2, name  # never more trials on a GPU than the packing
        assert (board["ended_at"] > board["started_at"]).all()
        # every trial ran beside the three others at some moment (4 promised, 4 ran)
        assert max_overlap(board) == 4, name
