"""Small pieces between the space and Ray Tune: searchers, schedulers, resources, results.

Kept apart from `search.run` so that the final stage and the tests share them.
Ray and Optuna are imported inside the functions: `search.space` and
`search.leaderboard` work without starting anything.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .space import Space

#: Ray trial statuses -> leaderboard statuses (see search.leaderboard).
TERMINAL = ("TERMINATED", "ERROR")


class ClusterError(ValueError):
    """The Ray cluster cannot run the space as asked (e.g. GPUs requested, none present)."""


# ----------------------------------------------------------------------------- resources
@dataclass(frozen=True)
class TrialResources:
    cpu: float
    gpu: float
    max_concurrent: int

    def as_dict(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}


def derive_resources(space: Space, cluster: Mapping[str, float]) -> TrialResources:
    """Per-trial CPU/GPU and concurrency from the space and what the cluster has.

    `gpu: auto` -> min(1, GPUs / max_concurrent) when the cluster has GPUs, else 0.
    A numeric `gpu > 0` on a cluster without GPUs is refused: Ray would leave
    every trial PENDING forever (DEPENDENCIES.md).
    """
    cpus = float(cluster.get("CPU", 0.0))
    gpus = float(cluster.get("GPU", 0.0))
    where = f"{space.path}: resources"
    if space.resources.cpu > cpus:
        raise ClusterError(
            f"{where}.cpu={space.resources.cpu:g} but the Ray cluster has {cpus:g} CPUs; a trial could never "
            f"start. Lower resources.cpu to <= {cpus:g} or join a larger cluster with --address"
        )
    max_concurrent = space.max_concurrent or max(1, int(cpus // space.resources.cpu))
    gpu = space.resources.gpu
    if gpu == "auto":
        gpu = min(1.0, gpus / max_concurrent) if gpus >= 1 else 0.0
        if gpu > 0 and gpu < 1:
            gpu = math.floor(gpu * 1000) / 1000  # avoid 0.333.. * 3 > 1 rounding refusals
    else:
        gpu = float(gpu)
        if gpu > 0 and gpus <= 0:
            raise ClusterError(
                f"{where}.gpu={gpu:g} but the Ray cluster has no GPU, so every trial would stay PENDING "
                "forever. Use `gpu: auto` (GPU when there is one, CPU otherwise) or `gpu: 0`, or join a "
                "cluster with GPUs via --address"
            )
        if gpu > gpus:
            raise ClusterError(
                f"{where}.gpu={gpu:g} but the cluster has {gpus:g} GPUs; lower resources.gpu"
            )
    return TrialResources(cpu=space.resources.cpu, gpu=gpu, max_concurrent=max_concurrent)


# ----------------------------------------------------------------------------- searchers
def make_point_searcher(points: Sequence[Mapping[str, Any]], metric: str, mode: str):
    """A Tune searcher that hands out a fixed list of configs once each (grid, final stage)."""
    return PointListSearcher(points=list(points), metric=metric, mode=mode)


try:  # defined only when Ray is installed (it always is in this project's venv)
    from ray.tune.search import Searcher as _Searcher
except Exception:  # pragma: no cover
    _Searcher = object  # type: ignore[assignment,misc]


class PointListSearcher(_Searcher):  # type: ignore[misc,valid-type]
    """Suggests each given config once, in order, then FINISHED. Resumable (save/restore)."""

    def __init__(self, points: list[dict[str, Any]], metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.points = [dict(p) for p in points]
        self.next_index = 0

    def suggest(self, trial_id: str):
        if self.next_index >= len(self.points):
            return _Searcher.FINISHED
        point = self.points[self.next_index]
        self.next_index += 1
        return dict(point)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"points": self.points, "next_index": self.next_index}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.points = state["points"]
        self.next_index = state["next_index"]


def make_search_alg(space: Space, max_concurrent: int):
    """OptunaSearch (TPE or random, seeded, define-by-run) or a point list for grid spaces."""
    if space.is_grid:
        points = [
            {**space.constants(), **point.overrides, "_label": point.label} for point in space.grid_configs()
        ]
        return make_point_searcher(points, space.metric, space.mode)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if space.searcher.kind == "optuna-random":
        sampler = optuna.samplers.RandomSampler(seed=space.searcher.seed)
    else:
        kwargs: dict[str, Any] = {"seed": space.searcher.seed}
        if space.searcher.n_startup_trials is not None:
            kwargs["n_startup_trials"] = space.searcher.n_startup_trials
        sampler = optuna.samplers.TPESampler(**kwargs)
    return OptunaSearch(
        space=space.define_by_run,
        metric=space.metric,
        mode=space.mode,
        sampler=sampler,
        study_name=space.name,
    )


def make_scheduler(space: Space):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if space.scheduler.kind == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=space.scheduler.max_epochs,
            grace_period=space.scheduler.grace_period,
            reduction_factor=space.scheduler.reduction_factor,
        )
    return FIFOScheduler()


def trial_dirname(trial: Any) -> str:
    """Short trial folder names (Ray's default puts every hyperparameter in it)."""
    return f"trial_{trial.trial_id}"


# ----------------------------------------------------------------------------- results
#: trial_id -> Ray status as of the last controller step (driver process). After a
#: Ctrl-C/SIGTERM Ray marks the trials it stops TERMINATED; this snapshot still says
#: RUNNING/PENDING for them, so the leaderboard can call them INTERRUPTED.
LAST_STATUS: dict[str, str] = {}

try:
    from ray.tune import Callback as _Callback
except Exception:  # pragma: no cover
    _Callback = object  # type: ignore[assignment,misc]


class StatusSnapshot(_Callback):  # type: ignore[misc,valid-type]
    """Records every trial's status at the end of each Tune controller step."""

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        for trial in trials:
            LAST_STATUS[trial.trial_id] = trial.status


@dataclass
class TrialRecord:
    trial_id: str
    ray_status: str
    config: dict[str, Any]
    history: pd.DataFrame
    error: str | None
    path: str
    failures: int = 0  # failed attempts (Ray's num_failures): retries used, +1 if it ended in ERROR


_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*): (.*)$")


def last_exception_line(text: str) -> str | None:
    """'pkg.mod.TrainingDiverged: msg' (last line of a traceback) -> 'TrainingDiverged: msg'."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    match = _EXCEPTION_LINE.match(lines[-1])
    return f"{match.group(1)}: {match.group(2)}" if match else lines[-1]


def effective_status(trial: Any) -> str:
    """The trial's status, RUNNING/PENDING/PAUSED when Ray only stopped it for an interrupt."""
    if trial.status == "TERMINATED" and LAST_STATUS.get(trial.trial_id) in ("RUNNING", "PENDING", "PAUSED"):
        return LAST_STATUS[trial.trial_id]
    return trial.status


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
    from .trainable import FAILURE_FILE

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


def collect_trials(result_grid: Any) -> list[TrialRecord]:
    """TrialRecords (status, config, per-epoch history, error) of a Tune ResultGrid."""
    statuses: dict[str, str] = {}
    try:  # the Trial objects carry the status; ResultGrid does not expose it publicly
        for trial in result_grid._experiment_analysis.trials:
            statuses[trial.trial_id] = effective_status(trial)
    except AttributeError:
        pass
    records = []
    try:
        trials = list(result_grid._experiment_analysis.trials)
    except AttributeError:
        trials = [None] * len(result_grid)
    for trial, result in zip(trials, result_grid):
        trial_id = trial.trial_id if trial is not None else (result.metrics or {}).get("trial_id", "?")
        history = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
        if "epoch" in history:
            # a retried trial restarts from its last registered checkpoint: when its worker
            # died between reporting epoch k and saving that epoch's checkpoint, epoch k is
            # trained and reported again; the rerun is the one the trial continued from
            history = history.drop_duplicates("epoch", keep="last").reset_index(drop=True)
        status = statuses.get(trial_id, "ERROR" if result.error is not None else "TERMINATED")
        error = error_text(result.path, result.error) if (result.error is not None or status == "ERROR") else None
        records.append(
            TrialRecord(
                trial_id=trial_id,
                ray_status=status,
                config=dict(result.config or {}),
                history=history,
                error=error,
                path=str(result.path),
                failures=int(getattr(trial, "num_failures", 0) or 0),
            )
        )
    return records


def leaderboard_status(ray_status: str, epochs_run: int, epochs: int) -> str:
    if ray_status == "ERROR":
        return "ERROR"
    if ray_status == "TERMINATED":
        return "COMPLETED" if epochs_run >= epochs else "EARLY_STOPPED"
    if epochs_run == 0:
        return "NOT_STARTED"
    return "INTERRUPTED"


def best_of(history: pd.DataFrame, metric: str, mode: str) -> tuple[float, int | None]:
    """(best value over epochs, its epoch) of `metric` in a trial's history (NaN, None if absent)."""
    if history is None or history.empty or metric not in history:
        return math.nan, None
    values = pd.to_numeric(history[metric], errors="coerce")
    if values.notna().sum() == 0:
        return math.nan, None
    index = values.idxmax() if mode == "max" else values.idxmin()
    epoch_col = "epoch" if "epoch" in history else "training_iteration"
    epoch = history.loc[index, epoch_col]
    return float(values.loc[index]), (int(epoch) if pd.notna(epoch) else None)


def epochs_run(history: pd.DataFrame) -> int:
    if history is None or history.empty:
        return 0
    column = "epoch" if "epoch" in history else "training_iteration"
    values = pd.to_numeric(history[column], errors="coerce")
    return int(values.max()) if values.notna().any() else 0


def wall_seconds(history: pd.DataFrame) -> float:
    if history is None or history.empty or "time_total_s" not in history:
        return math.nan
    return float(pd.to_numeric(history["time_total_s"], errors="coerce").max())


def hyperparameter_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    """Trial config -> one column per hyperparameter (lists as comma strings, meta keys dropped)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith("_"):
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[key] = value
    return out


def ray_environment(debug: bool = False) -> None:
    """Environment for the driver before Ray starts (no auto TensorBoardX logger, quiet output)."""
    # Our trainable writes the TensorBoard scalars + HParams itself; Ray's TBX logger
    # would add a second HParams session per trial. CSV/JSON loggers are passed explicitly.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    # one checkpoint per epoch of short trials triggers a warning about state snapshots
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not debug:
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def search_frame(records: Sequence[TrialRecord], space: Space) -> pd.DataFrame:
    """search.parquet rows (see search.leaderboard for the columns)."""
    from .space import config_id

    rows = []
    epochs = space.scheduler.max_epochs
    for record in records:
        history = record.history
        run = epochs_run(history)
        row: dict[str, Any] = {
            "trial_id": record.trial_id,
            "status": leaderboard_status(record.ray_status, run, epochs),
            "error": record.error,
            "failures": record.failures,
            "label": record.config.get("_label", ""),
            "config_id": config_id(record.config),
        }
        # every searched parameter has its column, also when a condition left it unsampled
        row.update({name: None for name in space.params})
        row.update(hyperparameter_columns(record.config))
        for metric in ("val_macro_f1", "val_psds"):
            mode = space.mode if metric in space.metrics else "max"
            row[metric], _ = best_of(history, metric, mode)
        row["selection_value"], row["best_epoch"] = best_of(history, space.metric, space.mode)
        row["epochs_run"] = run
        row["wall_seconds"] = wall_seconds(history)
        row["trial_dir"] = record.path
        row["config_json"] = json.dumps(record.config, sort_keys=True, default=str)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if len(space.metrics) > 1:
        from .leaderboard import pareto_front

        frame["pareto"] = pareto_front(frame, list(space.metrics), space.mode)
    ascending = space.mode == "min"
    frame["_missing"] = frame["selection_value"].isna()
    frame = frame.sort_values(["_missing", "selection_value"], ascending=[True, ascending], kind="stable")
    return frame.drop(columns="_missing").reset_index(drop=True)
