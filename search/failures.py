"""Failure reasons: the one `Type: message` line a failed trial is known by.

Read from what a failed attempt leaves behind -- Ray's error (its
`error.txt`, one 'Failure # N' section per attempt, or the exception Tune
hands over) and the trainable's `failure.json` -- for the leaderboards'
`error` column and the live output. A dead worker is named as such
(`WorkerDied: ...`, PID, Ray's exit type and detail); otherwise the
trainable's own exception wins over Ray's wrapper of it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .trainable import FAILURE_FILE

_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*): (.*)$")


def last_exception_line(text: str) -> str | None:
    """'pkg.mod.TrainingDiverged: msg' (last line of a traceback) -> 'TrainingDiverged: msg'."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    match = _EXCEPTION_LINE.match(lines[-1])
    return f"{match.group(1)}: {match.group(2)}" if match else lines[-1]


def error_text(trial_dir: str | Path | None, error: BaseException | str | None) -> str | None:
    """The trial's failure reason, 'Type: message', for its last failure.

    1. The worker process died (killed, out of memory, node lost): Ray's error
       says so and the trainable could write nothing: `WorkerDied: ...` with
       the PID and Ray's exit type and detail.
    2. Else failure.json, written by the trainable when it raised (present in
       the trial folder of the storage once Ray has synced it; each attempt
       that raises overwrites it).
    3. Else the last line of Ray's error (the exception, or the text of
       error.txt).
    """
    if error is None and trial_dir is not None:
        error = last_failure(Path(trial_dir) / "error.txt")
    died = None if error is None else worker_died_text(str(error))
    if died:
        return died
    if trial_dir is not None:
        path = Path(trial_dir) / FAILURE_FILE
        if path.is_file():
            try:
                record = json.loads(path.read_text())
                return f"{record['type']}: {record['message']}"
            except (OSError, ValueError, KeyError):
                pass
    if error is None:
        return None
    line = last_exception_line(str(error))
    return _strip_ray_wrapper(line) if line else type(error).__name__


def _strip_ray_wrapper(line: str) -> str:
    """'RayTaskError(TrainingDiverged): msg' -> 'TrainingDiverged: msg'."""
    match = re.match(r"^Ray\w*Error\((\w+)\): (.*)$", line)
    return f"{match.group(1)}: {match.group(2)}" if match else line


def worker_died_text(text: str) -> str | None:
    """'WorkerDied: ...' when Ray's error says the trial's worker process died, else None."""
    if "actor died unexpectedly" not in text and "worker process has died" not in text:
        return None
    pid = re.search(r"\bpid:? ?=?(\d+)", text)
    exit_type = re.search(r"Worker exit type: (\w+)", text)
    detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes|\n|$)", text)
    parts = [f"the trial's worker process{' (pid ' + pid.group(1) + ')' if pid else ''} died"]
    if exit_type:
        parts.append(f"exit type {exit_type.group(1)}")
    if detail:
        parts.append(detail.group(1).strip())
    return "WorkerDied: " + "; ".join(parts)


def last_failure(error_file: str | Path | None) -> str | None:
    """The last 'Failure #N' section of a Ray error.txt (one section per failed attempt)."""
    try:
        if error_file and Path(error_file).is_file():
            return Path(error_file).read_text(errors="replace").split("Failure #")[-1]
    except OSError:
        pass
    return None


def trial_error_text(trial: Any) -> str | None:
    """Failure reason of a Tune Trial, usable inside driver callbacks (before syncing)."""
    # Ray writes error.txt to the driver's staging folder before calling callbacks
    return error_text(getattr(trial, "path", None), last_failure(getattr(trial, "error_file", None)))
