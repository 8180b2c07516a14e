"""Ray token authentication: a two-node cluster with RAY_AUTH_MODE=token runs a search through --address.

The README's cluster recipe, on this machine (loopback): one token (a file of
mode 0600, named by RAY_AUTH_TOKEN_PATH so that nothing is written to
~/.ray), `RAY_AUTH_MODE=token` on the head, the worker and the driver. The
search runs and the driver does not warn; a call without the token is
refused by the cluster's GCS. An open cluster (no token) makes
`search.ray_auth.cluster_auth_warning` warn, whether the client sends a
token or not. The nodes are `ray start --block` process groups stopped by
their PIDs, never by process name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
WARNING = "without an authentication token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _alive_nodes(address: str, env: dict) -> int:
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(sum(1 for node in ray.nodes() if node['Alive']))"
    )
    res = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, env=env, timeout=60)
    lines = res.stdout.strip().splitlines()
    return int(lines[-1]) if res.returncode == 0 and lines and lines[-1].isdigit() else 0


@contextmanager
def cluster(nodes: int, env: dict) -> Iterator[str]:
    """`nodes` Ray nodes of 1 CPU on 127.0.0.1 with `env`; yields the head's address."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="ra", dir="/tmp")  # short: Ray's socket paths are length-limited
    common = [
        "--block",
        "--num-cpus",
        "1",
        "--num-gpus",
        "0",
        "--disable-usage-stats",
        "--node-ip-address",
        "127.0.0.1",
    ]
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> None:
        procs.append(
            subprocess.Popen(
                [RAY, "start", *args, *common],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    try:
        start("--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp_dir)
        for n in range(2, nodes + 1):
            deadline = time.monotonic() + 90
            while _alive_nodes(address, env) < n - 1:
                assert time.monotonic() < deadline, f"the cluster at {address} did not reach {n - 1} nodes"
                time.sleep(2)
            start("--address", address)
        deadline = time.monotonic() + 90
        while _alive_nodes(address, env) < nodes:
            assert time.monotonic() < deadline, f"the cluster at {address} did not reach {nodes} nodes"
            time.sleep(2)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _env(tmp_path: Path, mode: str) -> dict:
    token = tmp_path / "ray_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env.update(RAY_AUTH_MODE=mode, RAY_USAGE_STATS_ENABLED="0")
    if mode == "token":
        env["RAY_AUTH_TOKEN_PATH"] = str(token)
    return env


_CHECK = (
    "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
    "from search.ray_auth import cluster_auth_warning; print(cluster_auth_warning(sys.argv[1]))"
)


@pytest.mark.timeout(400)
def test_token_cluster_runs_a_search_and_refuses_calls_without_the_token(tmp_path, session_cache, tiny_data_root):
    env = _env(tmp_path, "token")
    with cluster(2, env) as address:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "search.run",
                "--space",
                str(REPO / "tests" / "spaces" / "tiny.yaml"),
                "--address",
                address,
                "--num-samples",
                "2",
                "--max-epochs",
                "1",
                "--no-final",
                "--no-report",
                "--out",
                str(tmp_path / "out"),
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
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert WARNING not in result.stderr
        board = pd.read_parquet(tmp_path / "out" / "tiny" / "search.parquet")
        assert len(board) == 2 and board["val_macro_f1"].notna().all()
        # a client without the token is turned away: by the GCS, and by ray.init
        from search.ray_auth import accepts_calls_without_token

        assert accepts_calls_without_token(address) is False
        assert _alive_nodes(address, _env(tmp_path, "disabled")) == 0


@pytest.mark.timeout(200)
def test_open_cluster_is_reported(tmp_path):
    with cluster(1, _env(tmp_path, "disabled")) as address:
        for mode in ("disabled", "token"):  # the client sends no token / sends one the cluster ignores
            check = subprocess.run(
                [sys.executable, "-c", _CHECK, address],
                capture_output=True,
                text=True,
                env=_env(tmp_path, mode),
                timeout=120,
                cwd=REPO,
            )
            assert check.returncode == 0, check.stderr[-3000:]
            assert WARNING in check.stdout and "RAY_AUTH_MODE=token" in check.stdout, (mode, check.stdout)
