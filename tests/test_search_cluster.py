"""A two-node Ray cluster on this machine (loopback) with logical GPUs and token auth, and a search through --address.

Each node declares 2 CPUs and one logical GPU (`ray start --num-gpus 1`; torch
runs on the CPU). With `--trials-per-gpu 2` the cluster promises 4 trials at
once: the test checks that 4 ran at once, on both nodes, never more than 2
on one GPU, that every row of search.parquet names its node and GPU, and
that each node, given its own feature cache (`SEDTUNE_NODE_CACHE`), built
the features there once.

The cluster is the README's secure recipe: `RAY_AUTH_MODE=token` and one token
(a file of mode 0600 named by RAY_AUTH_TOKEN_PATH, so nothing is written to
~/.ray) on the head, the worker and the driver. The driver does not warn
about authentication, and a client without the token is refused: by the
cluster's GCS (`search.ray_auth.accepts_calls_without_token`) and by
`ray.init`. (An open cluster's warning: tests/test_ray_auth.py.)
The nodes are started and stopped by PID (tests/clusters.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from clusters import REPO, Node, alive_nodes, gpu_space_text, local_cluster, max_overlap, ray_env, token_env

pytestmark = pytest.mark.slow  # Ray end-to-end / learning: the inner loop runs -m "not slow"


@pytest.mark.timeout(400)
def test_two_node_token_cluster_with_logical_gpus_packs_trials(tmp_path, session_cache, tiny_data_root):
    from search.ray_auth import accepts_calls_without_token

    env = token_env(tmp_path / "ray_token")
    space = tmp_path / "gpus.yaml"
    space.write_text(gpu_space_text(num_samples=4, final=False))
    # nodes that share no cache: each keeps its features in its own folder ($SEDTUNE_NODE_CACHE)
    caches = [tmp_path / "cache-node1", tmp_path / "cache-node2"]
    nodes = [Node(cpus=2, gpus=1, env={"SEDTUNE_NODE_CACHE": str(c)}) for c in caches]
    with local_cluster(nodes, env=env) as address:
        out = tmp_path / "out"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "search.run",
                "--space",
                str(space),
                "--address",
                address,
                "--trials-per-gpu",
                "2",
                "--no-final",
                "--no-report",
                "--out",
                str(out),
                "--data",
                str(tiny_data_root),
                "--cache-dir",
                str(session_cache),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        # a client without the token is turned away: by the GCS, and by ray.init
        assert accepts_calls_without_token(address) is False
        assert alive_nodes(address, ray_env()) == 0
        assert alive_nodes(address, env) == 2
    assert "without an authentication token" not in result.stderr + result.stdout
    assert "search: 4 trials at once on 2 of 2 GPUs, 2 per GPU (--trials-per-gpu)" in result.stdout
    board = pd.read_parquet(out / "gpus" / "search.parquet")
    assert len(board) == 4
    assert set(board["status"]) == {"COMPLETED"}
    assert board["val_macro_f1"].notna().all()
    search = json.loads((out / "gpus" / "concurrency.json").read_text())["search"]
    assert (search["peak_running"], search["promised"], search["trials"]) == (4, 4, 4)
    assert "checked on 2 nodes: each reads the driver's marker file and writes there" in result.stdout
    assert board["node_id"].nunique() == 2  # both nodes ran trials
    assert set(board["gpu_ids"]) == {"0"}  # one logical GPU per node, id 0 on each
    for (_, _), group in board.groupby(["node_id", "gpu_ids"]):
        assert max_overlap(group) <= 2
    assert max_overlap(board) == 4
    # each node built the features once, in its own cache, under the cache lock: one array per split
    # (synthetic train / selection, weak, unlabeled, validation, public eval), no leftovers of a second build
    built = [sorted(p.name for p in (c / "features").iterdir() if p.suffix in (".npy", ".json")) for c in caches]
    assert built[0] == built[1] and len([n for n in built[0] if n.endswith(".npy")]) >= 4, built
    assert not [p for c in caches for p in (c / "features").iterdir() if ".tmp-" in p.name]
