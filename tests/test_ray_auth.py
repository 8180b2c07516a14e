"""Ray token authentication: an open cluster (no token) is reported, whether the client sends a token or not.

A one-node cluster started in this process without a token (`ray.init`,
`RAY_AUTH_MODE=disabled` as tests/conftest.py sets it), and a driver process
that joins it and asks `search.ray_auth.cluster_auth_warning`: the warning
names the risk and the fix (`RAY_AUTH_MODE=token`) both when the driver sends
no token and when it sends one that the cluster ignores. The token cluster of
the README's recipe -- the search runs, the driver does not warn, a client
without the token is refused -- is tests/test_search_cluster.py's two-node
cluster.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clusters import ray_env, token_env

REPO = Path(__file__).resolve().parents[1]
WARNING = "without an authentication token"
_CHECK = (
    "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
    "from search.ray_auth import cluster_auth_warning; print(cluster_auth_warning(sys.argv[1]))"
)


@pytest.fixture(scope="module")
def open_cluster():
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.mark.timeout(200)
def test_open_cluster_is_reported(open_cluster, tmp_path):
    # the client sends no token / sends one the cluster ignores
    for env in (ray_env(), token_env(tmp_path / "ray_token")):
        check = subprocess.run(
            [sys.executable, "-c", _CHECK, open_cluster],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=REPO,
        )
        assert check.returncode == 0, check.stderr[-3000:]
        assert WARNING in check.stdout and "RAY_AUTH_MODE=token" in check.stdout, (env["RAY_AUTH_MODE"], check.stdout)
