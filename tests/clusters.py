"""Ray clusters of several nodes on this machine (loopback) for the tests, started and stopped by PID.

`local_cluster(nodes)` starts a head (`ray start --head --block`) and one
worker per further entry of `nodes`, each in its own process group with the
CPUs, logical GPUs (`--num-gpus N`: Ray hands them out as on a GPU machine,
`CUDA_VISIBLE_DEVICES` and `ray.get_gpu_ids()` included, while torch runs
on the CPU) and environment given, waits until every node is alive and
yields the address; with `env` holding `RAY_AUTH_MODE=token` and a token it is the README's
token cluster (`token_env`). On exit each `ray start` group is stopped by its PID,
never by process name, so other Ray sessions on the machine are untouched.
Shared by the cluster tests (tests/test_search_cluster.py, tests/test_cluster_gpus.py), with
`gpu_space_text` (the tiny test space on `gpu: auto`) and `max_overlap` (trials at once, from
the leaderboard's `started_at` / `ended_at`).
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


@dataclass
class Node:
    """One node of a test cluster: its CPUs, logical GPUs and extra environment."""

    cpus: int = 1
    gpus: int = 0
    env: Mapping[str, str] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_env(**extra: str) -> dict[str, str]:
    """The environment of the test cluster's processes and of drivers joining it (no auth token, no usage stats)."""
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def token_env(token_file: Path) -> dict[str, str]:
    """`ray_env` of a token cluster: `RAY_AUTH_MODE=token`, the token in `token_file` (written here, mode 0600,
    named by RAY_AUTH_TOKEN_PATH, so that nothing is written to ~/.ray)."""
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(32))
        token_file.chmod(0o600)
    env = {k: v for k, v in ray_env().items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def alive_nodes(address: str, env: Mapping[str, str]) -> int:
    """The nodes a driver with `env` sees alive at `address` (0 when it cannot join)."""
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(sum(1 for node in ray.nodes() if node['Alive']))"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, address], capture_output=True, text=True, env=dict(env), timeout=60
    )
    lines = res.stdout.strip().splitlines()
    return int(lines[-1]) if res.returncode == 0 and lines and lines[-1].isdigit() else 0


def wait_for_nodes(address: str, n: int, env: Mapping[str, str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive_nodes(address, env) == n:
            return
        time.sleep(2)
    raise AssertionError(f"the cluster at {address} did not reach {n} nodes")


@contextmanager
def local_cluster(
    nodes: Sequence[Node], extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Start `nodes` (the first is the head) on loopback; yields the address HOST:PORT.

    `env`: the environment of every node and of the probes that wait for them (default `ray_env()`: no
    token); each node adds its own `Node.env`. A token cluster: `RAY_AUTH_MODE=token` and the token in it.
    """
    base = dict(ray_env() if env is None else env)
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are length-limited
    procs: list[subprocess.Popen] = []

    def start(node: Node, args: list[str]) -> None:
        common = ["--block", "--num-cpus", str(node.cpus), "--num-gpus", str(node.gpus), "--disable-usage-stats"]
        procs.append(
            subprocess.Popen(
                [RAY, "start", *args, "--node-ip-address", "127.0.0.1", *common, *extra_args],
                env={**base, **dict(node.env)},
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    try:
        head, *workers = nodes
        start(head, ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp_dir])
        wait_for_nodes(address, 1, base)
        for node in workers:
            start(node, ["--address", address])
        if workers:
            wait_for_nodes(address, len(nodes), base)
        yield address
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- a space and a check for packing tests
TINY = (REPO / "tests" / "spaces" / "tiny.yaml").read_text()


def gpu_space_text(num_samples: int, final: bool, trials_per_gpu: int | None = None) -> str:
    """tests/spaces/tiny.yaml with `gpu: auto`, no max_concurrent, FIFO (every trial runs its 2 epochs); its final
    stage (`final=True`) has 4 seeds and no post-processing."""
    resources = "{cpu: 1, gpu: auto" + (f", trials_per_gpu: {trials_per_gpu}" if trials_per_gpu else "") + "}"
    text = (
        TINY.replace("name: tiny", "name: gpus")
        .replace("resources: {cpu: 1, gpu: 0}", f"resources: {resources}")
        .replace("max_concurrent: 2\n", "")
        .replace("num_samples: 4", f"num_samples: {num_samples}")
        .replace(
            "scheduler: {kind: asha, max_epochs: 2, grace_period: 1, reduction_factor: 2}",
            "scheduler: {kind: fifo, max_epochs: 2}",
        )
    )
    assert "gpu: auto" in text and "max_concurrent" not in text and "kind: fifo" in text
    if final:
        # 4 seeds; no per-class post-processing (one more process per final run, nothing to do with packing)
        four_seeds = text.replace("seeds: [1, 2, 3], epochs: 1, postprocess: true", "seeds: [1, 2, 3, 4], epochs: 1")
        assert four_seeds != text, "tests/spaces/tiny.yaml's final stage changed: update gpu_space_text"
        return four_seeds
    return text.split("\nfinal:")[0] + "\n"


def max_overlap(frame: pd.DataFrame) -> int:
    """The most trials of `frame` whose [started_at, ended_at] intervals overlap at one moment."""
    events = sorted(
        [(t, 1) for t in frame["started_at"]] + [(t, -1) for t in frame["ended_at"]], key=lambda e: (e[0], e[1])
    )
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak
