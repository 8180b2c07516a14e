"""A two-node Ray cluster on this machine (loopback), and a tiny search through --address.

The head and the worker are started with `ray start --block` in their own
process groups; the test stops them by those PIDs (never by process name), so
other Ray sessions on the machine are untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def wait_for_nodes(address: str, n: int, env: dict, timeout: float = 90.0) -> None:
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(sum(1 for node in ray.nodes() if node['Alive']))"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = subprocess.run(
            [sys.executable, "-c", probe, address], capture_output=True, text=True, env=env, timeout=60
        )
        if res.returncode == 0 and res.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(2)
    raise AssertionError(f"the cluster at {address} did not reach {n} nodes")


@pytest.mark.timeout(400)
def test_two_node_cluster_runs_a_search_through_address(tmp_path, session_cache, tiny_data_root):
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are length-limited
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats"]
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--include-dashboard",
            "false",
            "--temp-dir",
            temp_dir,
            *common,
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        wait_for_nodes(address, 1, env)
        worker = subprocess.Popen(
            [RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", *common],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_nodes(address, 2, env)
        out = tmp_path / "out"
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
        board = pd.read_parquet(out / "tiny" / "search.parquet")
        assert len(board) == 2
        assert set(board["status"]) <= {"COMPLETED", "EARLY_STOPPED"}
        assert board["val_macro_f1"].notna().all()
    finally:
        if worker is not None:
            stop_group(worker)
        stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
