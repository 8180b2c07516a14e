"""Ray Tune for both stages: start Ray, build or restore a stage's Tuner, fit it, read its trials.

`new_tuner` is the one place a `tune.Tuner` is built (the search stage and
the final stage differ only in searcher, scheduler, trial count, folder and
callbacks); `restore_tuner` continues one from its folder. Either gives a
`StageTuner`: the Tuner and the `StatusSnapshot` among its callbacks, which
tells an interrupted trial from a finished one after `fit` returns. The
state of a run lives in these objects and in `StopSignals`, not in module
globals.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from .failures import error_text
from .ray_auth import private_cluster_auth
from .ray_state import check_experiment_state, refuse_silent_restart
from .resources import TrialResources
from .rows import TrialRecord
from .space import Space
from .trainable import train_sed

#: Statuses of a trial Ray stopped only because the run was interrupted.
LIVE_STATUSES = ("RUNNING", "PENDING", "PAUSED")


# ----------------------------------------------------------------------------- Ray
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
    from .ray_quiet import quiet_experiment_start

    quiet_experiment_start()  # no "Configuration for experiment" box at each stage (verbose=0 only)


def start_ray(address: str | None, debug: bool) -> bool:
    """Start or join Ray; False when Ray was already initialised by the caller (tests)."""
    ray_environment(debug)
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=debug)
    else:
        # A private local cluster: token authentication with a token of this run, no file under ~/.ray
        # (search.ray_auth; RAY_AUTH_MODE, when set, is kept)
        private_cluster_auth()
        ray.init(
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=debug,
            configure_logging=True,
            logging_level="WARNING" if not debug else "INFO",
        )
    return True


def trial_runtime(resources: TrialResources) -> dict[str, Any]:
    """The TrainConfig values a trial gets from its resources (before its own config, which wins)."""
    return {"num_threads": max(1, int(resources.cpu))}


def make_trainable(
    data: str | None, cache_dir: str | None, resources: TrialResources, prepared_dir: str | None = None
) -> Any:
    """`search.trainable.train_sed` with the run's data and cache, asking for `resources` per trial.

    `prepared_dir`: where the driver saved its prepared data (`search.prepared`).
    """
    runtime = trial_runtime(resources)
    fn = tune.with_parameters(
        train_sed, data_root=data, cache_dir=cache_dir, runtime_overrides=runtime, prepared_dir=prepared_dir
    )
    return tune.with_resources(fn, resources.as_dict())


def trial_dirname(trial: Any) -> str:
    """Short trial folder names (Ray's default puts every hyperparameter in it)."""
    return f"trial_{trial.trial_id}"


# ----------------------------------------------------------------------------- interruptions
@dataclass
class StopSignals:
    """SIGTERMs the driver received during the run (a Ctrl-C shows in the trial statuses)."""

    sigterms: int = 0


class StatusSnapshot(tune.Callback):
    """Every trial's status at the end of the last Tune controller step (driver side).

    After a Ctrl-C/SIGTERM Ray marks the trials it stops TERMINATED; the
    snapshot still says RUNNING/PENDING/PAUSED for them, so the leaderboard
    can call them INTERRUPTED.
    """

    def __init__(self) -> None:
        self.last_status: dict[str, str] = {}

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        for trial in trials:
            self.last_status[trial.trial_id] = trial.status

    def effective_status(self, trial: Any) -> str:
        """The trial's status, RUNNING/PENDING/PAUSED when Ray only stopped it for an interrupt."""
        if trial.status == "TERMINATED" and self.last_status.get(trial.trial_id) in LIVE_STATUSES:
            return self.last_status[trial.trial_id]
        return trial.status


# ----------------------------------------------------------------------------- tuners
@dataclass
class StageTuner:
    """A stage's Tuner and the status snapshot its callbacks keep."""

    tuner: Any
    snapshot: StatusSnapshot
    #: the experiment folder a restored Tuner continues (None for a new one)
    restored_from: str | None = None

    def fit(self) -> Any:
        """Run (or continue) the experiment; returns Tune's ResultGrid.

        A restored Tuner whose state Ray cannot read raises `RestoreFailed` (Ray would start over)."""
        self.snapshot.last_status.clear()
        if self.restored_from is None:
            return self.tuner.fit()
        with refuse_silent_restart(self.restored_from):
            return self.tuner.fit()

    def interrupted(self, result_grid: Any, expected: int | None, signals: StopSignals) -> bool:
        """Did `fit` return because of Ctrl-C/SIGTERM rather than because every trial ended?"""
        if signals.sigterms:
            return True
        trials = _trials(result_grid) or []
        if any(self.snapshot.effective_status(t) not in ("TERMINATED", "ERROR") for t in trials):
            return True
        return expected is not None and len(trials) < expected

    def records(self, result_grid: Any) -> list[TrialRecord]:
        """TrialRecords (status, config, per-epoch history, error) of the ResultGrid of `fit`."""
        trials = _trials(result_grid)
        statuses = {t.trial_id: self.snapshot.effective_status(t) for t in trials or ()}
        records = []
        for trial, result in zip(trials if trials is not None else [None] * len(result_grid), result_grid):
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


def new_tuner(
    trainable: Any,
    space: Space,
    *,
    storage: Path | str,
    name: str,
    search_alg: Any,
    num_samples: int,
    max_concurrent: int,
    callbacks: Sequence[Any] = (),
    scheduler: Any = None,
    debug: bool = False,
) -> StageTuner:
    """The Tuner of a stage: experiment folder `storage/name`, a checkpoint per epoch, short trial names.

    `debug` (search.run's --debug or --verbose) brings back Ray's own progress table.
    """
    snapshot = StatusSnapshot()
    tuner = tune.Tuner(
        trainable,
        param_space={},
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler,
            metric=space.tune_metric,
            mode=space.mode,
            num_samples=num_samples,
            max_concurrent_trials=max_concurrent,
            trial_dirname_creator=trial_dirname,
            trial_name_creator=trial_dirname,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=str(storage),
            name=name,
            callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), snapshot, *callbacks],
            failure_config=tune.FailureConfig(max_failures=space.max_failures),
            # two, not one: after a hard kill Ray's last state snapshot may still name the
            # previous checkpoint, which must then still exist for --resume
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # trials write TensorBoard/eval/failure files into their working folder; with
            # reused actors that folder reaches the storage only through artifact syncing
            sync_config=tune.SyncConfig(sync_artifacts=True),
            verbose=1 if debug else 0,
        ),
    )
    return StageTuner(tuner, snapshot)


def restore_tuner(path: Path | str, trainable: Any, resume_errored: bool) -> StageTuner:
    """Continue the experiment in `path` (its callbacks, the snapshot among them, come from its tuner.pkl).

    Ray's state files cut short by a kill are mended or set aside first (`search.ray_state`; raises
    its `TornState` when none is whole), and `fit` raises `RestoreFailed` when Ray still cannot read
    them: Ray itself would start the experiment over in silence.
    """
    for line in check_experiment_state(path):
        print(line, flush=True)
    tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=resume_errored)
    return StageTuner(tuner, _restored_snapshot(tuner), restored_from=str(path))


def _restored_snapshot(tuner: Any) -> StatusSnapshot:
    """The StatusSnapshot Tune rebuilt with a restored Tuner's callbacks.

    Ray has no public accessor for them (like `_trials`, this reads a private
    attribute). Without one, a snapshot that no step updates: trials Ray stops
    for an interrupt then read as TERMINATED.
    """
    internal = getattr(tuner, "_local_tuner", None)
    run_config = internal.get_run_config() if internal is not None else None
    for callback in getattr(run_config, "callbacks", None) or ():
        if isinstance(callback, StatusSnapshot):
            return callback
    warnings.warn(
        "the restored Tuner has no StatusSnapshot callback; interrupted trials will read TERMINATED", stacklevel=2
    )
    return StatusSnapshot()


def _trials(result_grid: Any) -> list | None:
    """The Trial objects of a ResultGrid (they carry the status; ResultGrid does not expose it publicly)."""
    trials = getattr(getattr(result_grid, "_experiment_analysis", None), "trials", None)
    return None if trials is None else list(trials)
