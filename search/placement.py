"""Where each trial ran and how many ran at once: GPU ids per trial, the peak of RUNNING trials per stage.

- In the trial (`trial_placement`): the Ray node id and the GPU ids Ray
  gave the trial's worker (`ray.get_gpu_ids()`: the ids in its
  `CUDA_VISIBLE_DEVICES`, also for logical GPUs declared with `ray start
  --num-gpus N` on a machine without any), the wall-clock time the trial
  started, and (per report) the time of the report. They travel with every
  result, so the leaderboards carry `node_id`, `gpu_ids`, `started_at` and
  `ended_at` (`placement_columns`).
- In the driver (`ConcurrencyMeter`, a Tune callback): the most trials
  Tune had RUNNING at once in a stage, against the number promised
  (`search.packing`), printed at the end of the stage and kept in
  `OUT/NAME/concurrency.json` with the time Tune started each trial.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
from ray import tune

CONCURRENCY_FILE = "concurrency.json"
#: Result keys this module adds to each report (besides Ray's own).
PLACEMENT_KEYS = ("node_id", "gpu_ids", "started_at", "reported_at")


def trial_placement(started_at: float) -> dict[str, Any]:
    """The node and GPU ids of the current Ray worker, and when its trial started (call inside a trial)."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        # a string, never empty: an empty CSV cell would read back as NaN
        "gpu_ids": ",".join(str(g) for g in gpu_ids) if gpu_ids else "-",
        "started_at": float(started_at),
    }


def placement_columns(history: pd.DataFrame | None, last: dict[str, Any] | None = None) -> dict[str, Any]:
    """`node_id`, `gpu_ids` (comma text, None without a GPU), `started_at`, `ended_at` of a trial.

    From its per-epoch results (`history`, the last attempt's values) or its last result.
    """
    row: dict[str, Any] = {"node_id": None, "gpu_ids": None, "started_at": math.nan, "ended_at": math.nan}
    source: dict[str, Any] = {}
    if history is not None and not history.empty:
        source = {str(k): v for k, v in history.iloc[-1].to_dict().items()}
    elif last:
        source = dict(last)
    if source.get("node_id") is not None and not _is_nan(source.get("node_id")):
        row["node_id"] = str(source["node_id"])
    gpu = source.get("gpu_ids")
    if gpu is not None and not _is_nan(gpu) and str(gpu) != "-":
        row["gpu_ids"] = str(gpu)
    for key, column in (("started_at", "started_at"), ("reported_at", "ended_at")):
        value = source.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[column] = float(value)
    return row


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class ConcurrencyMeter(tune.Callback):
    """The peak number of RUNNING trials of a stage, printed and written to concurrency.json at its end."""

    def __init__(self, stage: str, promised: int, exp_dir: str | Path) -> None:
        self.stage = stage
        self.promised = promised
        self.exp_dir = str(exp_dir)
        self.peak = 0
        self.first_start: float | None = None
        #: when Tune started each trial (driver clock): with the trial's own `started_at`, its start-up
        self.scheduled_at: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.scheduled_at.setdefault(trial.trial_id, time.time())

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        running = sum(1 for t in trials if t.status == "RUNNING")
        if running and self.first_start is None:
            self.first_start = time.time()
        self.peak = max(self.peak, running)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        path = Path(self.exp_dir) / CONCURRENCY_FILE
        try:
            record = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            record = {}
        record[self.stage] = {
            "peak_running": self.peak,
            "promised": self.promised,
            "trials": len(trials),
            "scheduled_at": self.scheduled_at,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
        print(f"sedtune: {self.stage}: at most {self.peak} trials ran at once ({self.promised} promised)", flush=True)
