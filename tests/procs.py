"""Process helpers for the fault-injection tests: find a run's processes by PID, never by name."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> set[int]:
    """PIDs of every process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current]
        found.update(children)
        frontier.extend(children)
    return found


def start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): tells a PID reused by another process."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]


def snapshot(pids: set[int]) -> dict[int, str]:
    """PID -> start time of those still present."""
    out = {}
    for pid in pids:
        start = start_time(pid)
        if start is not None:
            out[pid] = start
    return out


def alive(seen: dict[int, str]) -> set[int]:
    """Those of `seen` still running: same start time, not a zombie (exited but not yet reaped:
    a process orphaned in a container whose PID 1 does not reap stays a zombie)."""
    living = set()
    for pid, start in seen.items():
        fields = _stat_fields(pid)
        if fields is not None and fields[19] == start and fields[0] not in ("Z", "X"):
            living.add(pid)
    return living


def kill_all(pids: set[int] | dict[int, str]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def output_lines(proc, timeout: float, lines: list[str]):
    """Yield the lines `proc` prints (each also appended to `lines`) until it exits or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                return
            continue
        lines.append(line)
        yield line
