"""Failing trials stay contained: a worker killed from outside, the retry policy, an exception.

One `python -m search.run` subprocess over a grid of three tiny configs run
two at a time (as on the 2-core machine the suite runs on) with `max_failures: 1`:

- `killed_once`: the test SIGKILLs the trial's worker process (by the PID the
  driver prints, checked to be a process of this run) after its first epoch;
  Ray retries it once, from its last epoch's checkpoint, in a new process: it
  completes with every epoch reported once and `failures` = 1;
- `killed_twice`: killed, retried, killed again: no retry left, so it ends in
  ERROR with the reason (the worker died) and `failures` = 2;
- `raises`: the trainer raises a ValueError (a batch larger than the tiny
  data's weak part): retried once, fails the same way, ERROR with the
  exception's type and message.

The search still completes (exit 0), the summary names each failure, the
final stage runs on the surviving config, and every process of the run is
gone once the driver has exited.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from procs import alive, descendants, kill_all, output_lines, snapshot

from search import leaderboard as lb

pytestmark = pytest.mark.slow  # Ray end-to-end / learning: the inner loop runs -m "not slow"

REPO = Path(__file__).resolve().parents[1]

SPACE = """
name: faults
searcher: {kind: grid}
scheduler: {kind: fifo, max_epochs: 6}
resources: {cpu: 1, gpu: 0}
max_concurrent: 2
max_failures: 1
fixed:
  embedded_size: tiny
  cnn_filters: [4, 8, 8, 8, 8, 8, 8]
  rnn_hidden: 8
  regularization: l2
  rampup_epochs: 1
  device: cpu
  track_energy: false  # CodeCarbon's start: ~1.7 CPU-s a trial process (tests/spaces/tiny.yaml)
configs:
  - {name: killed_once, augmentation: random, locations: latent, batch_size: 8}
  - {name: killed_twice, augmentation: random, locations: cnn, batch_size: 8}
  - {name: raises, augmentation: random, locations: rnn, batch_size: 48}
final: {top_k: 1, seeds: [1], epochs: 1}
"""


@pytest.mark.timeout(420)
def test_killed_retried_raising_trials_are_contained(tmp_path):
    space = tmp_path / "faults.yaml"
    space.write_text(textwrap.dedent(SPACE))
    out = tmp_path / "results"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.run", "--space", str(space), "--out", str(out), "--no-report"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    seen: dict[int, str] = {}  # every process of the run, with its start time
    labels: dict[str, str] = {}  # trial id -> config name
    workers: dict[str, list[int]] = {}  # trial id -> worker PIDs, one per attempt
    kills = {"killed_once": 1, "killed_twice": 2}
    killed: dict[str, list[int]] = {}
    try:
        for line in output_lines(proc, 400, lines):
            seen = {**snapshot(descendants(proc.pid)), **seen}
            if match := re.search(r"\[search\] (\w+) start: (\w+)", line):
                labels[match.group(1)] = match.group(2)
            elif match := re.search(r"\[search\] (\w+) runs on \S+ pid (\d+)", line):
                trial, pid = match.group(1), int(match.group(2))
                workers.setdefault(trial, []).append(pid)
                label = labels[trial]
                if len(killed.get(label, [])) < kills.get(label, 0):
                    # only a process of this run (never by name): the worker is below the driver
                    assert pid in descendants(proc.pid), f"pid {pid} is not a process of this run"
                    os.kill(pid, signal.SIGKILL)
                    killed.setdefault(label, []).append(pid)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            kill_all(descendants(proc.pid))
            proc.kill()
            proc.wait()
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert {label: len(pids) for label, pids in killed.items()} == kills, output

    by_label = {label: trial for trial, label in labels.items()}
    once, twice, raises = by_label["killed_once"], by_label["killed_twice"], by_label["raises"]
    # every attempt of a killed trial ran in a new process
    assert len(workers[once]) == 2 and len(set(workers[once])) == 2, output
    assert re.search(rf"\[search\] {once} failed \(.+\); retry 1/1 from its last checkpoint \(epoch [1-6]\)", output)
    assert re.search(rf"\[search\] {once} done", output)
    assert re.search(rf"\[search\] {twice} FAILED \(after 1 retries\): ", output), output
    assert re.search(
        rf"\[search\] {raises} FAILED \(after 1 retries\): ValueError: the 'weak' part has 8 clips", output
    )

    search = lb.read_parquet(out / "faults" / "search.parquet").set_index("label")
    row = search.loc["killed_once"]
    assert row["status"] == "COMPLETED" and row["failures"] == 1 and row["epochs_run"] == 6
    # resumed from its last checkpoint, not from zero: the new worker's first epoch is the
    # epoch after the last one the killed worker reported, or that epoch itself when the
    # kill came between its report and its checkpoint save (at most one epoch lost)
    progress = pd.read_csv(Path(row["trial_dir"]) / "progress.csv")
    first, second = workers[once]
    before = progress[progress["pid"] == first]["epoch"].tolist()
    after = progress[progress["pid"] == second]["epoch"].tolist()
    assert before == list(range(1, len(before) + 1)) and len(before) >= 1, (progress, output)
    assert after[-1] == 6 and after == list(range(after[0], 7)), (progress, output)
    assert after[0] in (before[-1], before[-1] + 1), (progress, output)
    assert set(progress["pid"]) == {first, second}

    row = search.loc["killed_twice"]
    assert row["status"] == "ERROR" and row["failures"] == 2
    assert row["error"].startswith(f"WorkerDied: the trial's worker process (pid {killed['killed_twice'][1]}) died"), (
        row["error"]
    )
    row = search.loc["raises"]
    assert row["status"] == "ERROR" and row["failures"] == 2
    assert row["error"].startswith("ValueError: the 'weak' part has 8 clips but each batch takes 12")

    # the summary says how many failed and why; the final stage ran the survivor
    assert "3 trials 1 completed, 2 error" in output
    assert f"{twice} failed: " in output and f"{raises} failed: ValueError" in output
    assert f"{once} completed after 1 failed attempt(s)" in output
    final = lb.read_parquet(out / "faults" / "final.parquet")
    assert list(final["label"]) == ["killed_once"] and (final["status"] == "COMPLETED").all()
    assert (final["failures"] == 0).all()

    # nothing of the run is left running (a PID now alive with another start time was reused)
    deadline = time.monotonic() + 30
    while alive(seen) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(seen), f"processes of the run still alive: {sorted(alive(seen))}"
