"""`python -m search.run --space spaces/latent.yaml` -- the search, then the final stage.

Usage::

    python -m search.run --space FILE [--data ROOT] [--out DIR] [--name NAME]
                         [--address ADDR] [--resume] [--num-samples N]
                         [--max-epochs N] [--cache-dir DIR] [--debug]

Steps (DESIGN.md, "Run"):

1. validate everything before Ray starts: the space (`search.space`), the
   command line, the experiment folder `OUT/NAME` (a new run refuses an
   existing folder, `--resume` refuses a missing one), the dataset
   (`sed.trainer.prepare_data` builds the cached features once here, so
   trials only read them);
2. start Ray locally (all CPUs of the machine; `RAY_AUTH_MODE=disabled`
   unless set) or join `--address`; check the per-trial resources against
   the cluster (a GPU request on a GPU-less cluster is refused);
3. search: Tuner with OptunaSearch(TPESampler(seed), define-by-run space) or
   the grid's fixed list, ASHA on `training_iteration` (= epochs), checkpoints
   every epoch, storage `OUT/NAME`; one progress line per trial epoch;
   `search.parquet` when it ends;
4. final stage (`search.final`): top-k x seeds retrained and scored on the
   public eval set; `final.parquet`, `final_summary.parquet`;
5. a summary table.

`--resume` continues `OUT/NAME` with the space and options it was started
with (stored in `OUT/NAME/sedtune_run.json`): the search is restored with
`Tuner.restore(..., resume_errored=True)` (finished trials are kept, running
ones continue from their last checkpoint), then the final stage runs the
(config, seed) pairs not yet in `final.parquet`.

Ctrl-C / SIGTERM stop the run gracefully (Ray saves its state), shut Ray
down and print the exact resume command. Errors a user can fix print one
paragraph and exit with status 2 (traceback with `--debug`); an interrupted
run exits with 130.

Per-trial TensorBoard logs (scalars + HParams) are in the trial folders:
`tensorboard --logdir OUT/NAME`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import shlex
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from . import final as final_stage
from . import leaderboard as lb
from .space import Space, SpaceError, load_space, parse_space

RUN_FILE = "sedtune_run.json"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """A command-line mistake; the message says how to fix it."""


class Interrupted(Exception):
    """The run was stopped by SIGINT/SIGTERM; state is saved and resumable."""


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Ray Tune + Optuna search over consistency augmentations for SED, then a multi-seed "
        "final stage scored on the public evaluation set.",
    )
    parser.add_argument("--space", type=Path, help="search space YAML (spaces/*.yaml); optional with --resume")
    parser.add_argument("--data", type=Path, help="DESED-format dataset root (default: the embedded dataset)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results/)")
    parser.add_argument("--name", help="experiment name (default: the space's name)")
    parser.add_argument("--address", help="address of an existing Ray cluster (default: start one locally)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted experiment OUT/NAME")
    parser.add_argument("--num-samples", type=int, help="override the space's num_samples")
    parser.add_argument("--max-epochs", type=int, help="override scheduler.max_epochs (and cap final.epochs)")
    parser.add_argument("--cache-dir", type=Path, help="feature/dataset cache (default: $SEDTUNE_CACHE or ~/.cache/sedtune)")
    parser.add_argument("--no-final", action="store_true", help="stop after the search stage")
    parser.add_argument("--debug", action="store_true", help="tracebacks for every error; trial logs shown")
    return parser


@dataclasses.dataclass
class RunSettings:
    """What defines an experiment (stored in OUT/NAME/sedtune_run.json for --resume)."""

    space_path: str
    space_text: str
    num_samples: int | None
    max_epochs: int | None
    data: str | None
    cache_dir: str | None
    created: str = ""

    def space(self) -> Space:
        space = parse_space(self.space_text, self.space_path)
        return space.with_overrides(num_samples=self.num_samples, max_epochs=self.max_epochs)


def resolve_settings(args: argparse.Namespace) -> tuple[RunSettings, Space, Path]:
    """Settings, validated space and experiment folder; refuses bad combinations (UsageError/SpaceError)."""
    out = args.out.expanduser().resolve()
    if args.resume:
        if args.name is None and args.space is None:
            raise UsageError("--resume needs --name NAME (or --space FILE, whose name is the default) to find OUT/NAME")
        name = args.name or load_space(args.space).name
        exp_dir = out / name
        run_file = exp_dir / RUN_FILE
        if not exp_dir.is_dir():
            raise UsageError(
                f"--resume: no experiment at {exp_dir}; check --out/--name, or start it without --resume"
            )
        if not run_file.is_file():
            raise UsageError(
                f"--resume: {exp_dir} is not a sedtune experiment (no {RUN_FILE}); check --out/--name"
            )
        stored = RunSettings(**json.loads(run_file.read_text()))
        if args.space is not None:
            text = args.space.read_text(encoding="utf-8") if args.space.is_file() else None
            if text != stored.space_text:
                raise UsageError(
                    f"--resume: {args.space} differs from the space {exp_dir} was started with "
                    f"({stored.space_path}); resume without --space, or start a new experiment with another --name"
                )
        for flag, new, old in (
            ("--num-samples", args.num_samples, stored.num_samples),
            ("--max-epochs", args.max_epochs, stored.max_epochs),
        ):
            if new is not None and new != old:
                raise UsageError(f"--resume: {flag} {new} differs from the original run ({old}); leave it out")
        if args.data is not None and str(args.data.expanduser().resolve()) != stored.data:
            raise UsageError(f"--resume: --data {args.data} differs from the original run ({stored.data}); leave it out")
        if args.cache_dir is not None and str(args.cache_dir.expanduser().resolve()) != stored.cache_dir:
            raise UsageError(f"--resume: --cache-dir differs from the original run ({stored.cache_dir}); leave it out")
        return stored, stored.space(), exp_dir
    if args.space is None:
        raise UsageError("give --space FILE (e.g. --space spaces/demo.yaml), or --resume with --name")
    space = load_space(args.space).with_overrides(num_samples=args.num_samples, max_epochs=args.max_epochs)
    name = args.name or space.name
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"--name {name!r}: give a plain folder name")
    exp_dir = out / name
    if exp_dir.exists():
        raise UsageError(
            f"{exp_dir} already exists: add --resume to continue that experiment, or choose another --name "
            "(or --out)"
        )
    data = None
    if args.data is not None:
        data_path = args.data.expanduser().resolve()
        if not data_path.is_dir():
            raise UsageError(f"--data {args.data}: no such folder; give the root of a DESED-format dataset")
        data = str(data_path)
    settings = RunSettings(
        space_path=str(space.path),
        space_text=space.text,
        num_samples=args.num_samples,
        max_epochs=args.max_epochs,
        data=data,
        cache_dir=str(args.cache_dir.expanduser().resolve()) if args.cache_dir else None,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return settings, space, exp_dir


def resume_command(out: Path, name: str, address: str | None) -> str:
    parts = [sys.executable or "python", "-m", "search.run", "--resume", "--out", str(out), "--name", name]
    if address:
        parts += ["--address", address]
    return " ".join(shlex.quote(p) for p in parts)


# ----------------------------------------------------------------------------- data + Ray
def prepare_datasets(space: Space, settings: RunSettings) -> None:
    """Build the dataset + cached features once in the driver (trials then only read them)."""
    from sed import trainer as trainer_module

    cache = Path(settings.cache_dir) if settings.cache_dir else None
    for cfg in space.data_configs():
        started = time.perf_counter()
        trainer_module.prepare_data(cfg, settings.data, cache, progress=True)
        print(f"sedtune: data ready ({cfg.data or settings.data or 'embedded ' + cfg.embedded_size}) "
              f"in {time.perf_counter() - started:.1f} s", flush=True)


ADDRESS_TIMEOUT_S = 5.0


def check_output_dir(out: Path) -> None:
    """Refuse an output folder that cannot be written, leaving nothing behind."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is not a folder; choose a writable folder for results")
    try:
        with tempfile.TemporaryDirectory(dir=existing, prefix=".sedtune-write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc}); choose a writable folder for results") from None


def check_address(address: str | None, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """Refuse an unreachable `--address` within `timeout` seconds, before anything is written.

    `ray.init(address=...)` on a dead address retries for a long time; a TCP
    connection to the head's GCS port answers (or fails) at once.
    """
    if not address or address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        raise UsageError(f"--address {address!r}: give HOST:PORT of the Ray head (e.g. 10.0.0.5:6379) or 'auto'")
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        raise UsageError(
            f"--address {address}: no Ray cluster answers there ({exc}). Start one with "
            f"`ray start --head --port {port_text}` on {host}, or leave --address out to run locally"
        ) from None


def start_ray(address: str | None, debug: bool) -> bool:
    """Start or join Ray; False when Ray was already initialised by the caller (tests)."""
    import ray

    from .ray_glue import ray_environment

    ray_environment(debug)
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=debug)
    else:
        # A private local cluster: no token file under ~/.ray (DEPENDENCIES.md).
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=debug,
                 configure_logging=True, logging_level="WARNING" if not debug else "INFO")
    return True


def _trainable(settings: RunSettings, resources: Any):
    from ray import tune

    from .trainable import train_sed

    runtime = {"num_threads": max(1, int(resources.cpu))}
    fn = tune.with_parameters(train_sed, data_root=settings.data, cache_dir=settings.cache_dir, runtime_overrides=runtime)
    return tune.with_resources(fn, resources.as_dict())


def _run_config(storage: Path, name: str, callbacks: list, space: Space, debug: bool):
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from .ray_glue import StatusSnapshot

    return tune.RunConfig(
        storage_path=str(storage),
        name=name,
        callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), StatusSnapshot(), *callbacks],
        failure_config=tune.FailureConfig(max_failures=space.max_failures),
        # two, not one: after a hard kill Ray's last state snapshot may still name the
        # previous checkpoint, which must then still exist for --resume
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        # trials write TensorBoard/eval/failure files into their working folder; with
        # reused actors that folder reaches the storage only through artifact syncing
        sync_config=tune.SyncConfig(sync_artifacts=True),
        verbose=1 if debug else 0,
    )


def _fit(tuner: Any) -> Any:
    from .ray_glue import LAST_STATUS

    LAST_STATUS.clear()
    return tuner.fit()


#: Set by the SIGTERM handler of `main` (SIGINT is seen through the trial statuses).
_SIGNALLED = {"count": 0}


def _interrupted(result_grid: Any, expected: int | None) -> bool:
    """Did Tuner.fit return because of Ctrl-C/SIGTERM rather than because every trial ended?"""
    from .ray_glue import effective_status

    if _SIGNALLED["count"]:
        return True
    trials = getattr(getattr(result_grid, "_experiment_analysis", None), "trials", None) or []
    if any(effective_status(t) not in ("TERMINATED", "ERROR") for t in trials):
        return True
    return expected is not None and len(trials) < expected


# ----------------------------------------------------------------------------- progress
try:
    from ray.tune import Callback as _Callback
except Exception:  # pragma: no cover
    _Callback = object  # type: ignore[assignment,misc]


class ProgressPrinter(_Callback):  # type: ignore[misc,valid-type]
    """One line per trial epoch, start, stop and error (driver side)."""

    def __init__(self, stage: str, metric: str, keys: Sequence[str], epochs: int, max_failures: int = 0):
        self.stage = stage
        self.metric = metric
        self.keys = list(keys)
        self.epochs = epochs
        self.max_failures = max_failures
        self._workers: dict[str, tuple[Any, Any]] = {}

    def _describe(self, trial: Any) -> str:
        config = trial.config
        parts = []
        if config.get("_label"):
            parts.append(str(config["_label"]))
        for key in self.keys:
            if key in config:
                value = config[key]
                parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
        if "_evaluate" in config:
            parts.append(f"config #{config.get('_rank')} ({config.get('_config_id')}) seed={config.get('seed')}")
        return " ".join(parts)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"[{self.stage}] {trial.trial_id} start: {self._describe(trial)}", flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        worker = (result.get("hostname"), result.get("pid"))
        if worker[1] is not None and self._workers.get(trial.trial_id) != worker:
            # once per attempt: where the trial runs (to find a stuck or dead worker)
            self._workers[trial.trial_id] = worker
            print(f"[{self.stage}] {trial.trial_id} runs on {worker[0]} pid {worker[1]}", flush=True)
        value = result.get(self.metric)
        shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
        extra = ""
        if "eval_macro_f1" in result:
            extra = f" | eval_macro_f1 {result['eval_macro_f1']:.4f} eval_psds {result.get('eval_psds', float('nan')):.4f}"
        print(
            f"[{self.stage}] {trial.trial_id} epoch {result.get('epoch', '?')}/{self.epochs} "
            f"loss {result.get('loss_total', float('nan')):.4f} {self.metric} {shown} "
            f"({result.get('epoch_seconds', float('nan')):.1f}s){extra}",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        epochs = last.get("epoch", 0)
        how = "done" if epochs >= self.epochs else f"stopped by the scheduler after {epochs} epochs"
        print(f"[{self.stage}] {trial.trial_id} {how}", flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from .ray_glue import trial_error_text

        tries = f" (after {trial.num_failures - 1} retries)" if trial.num_failures > 1 else ""
        print(f"[{self.stage}] {trial.trial_id} FAILED{tries}: {trial_error_text(trial) or 'see error.txt'}",
              flush=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from .ray_glue import trial_error_text

        epoch = (trial.last_result or {}).get("epoch", 0)
        print(
            f"[{self.stage}] {trial.trial_id} failed ({trial_error_text(trial) or 'see error.txt'}); "
            f"retry {trial.num_failures}/{self.max_failures} from its last checkpoint (epoch {epoch})",
            flush=True,
        )


# ----------------------------------------------------------------------------- stages
def completed_search(space: Space, exp_dir: Path) -> pd.DataFrame | None:
    """search.parquet when the search stage has finished every trial, else None."""
    path = exp_dir / lb.SEARCH_FILE
    if not path.is_file():
        return None
    frame = lb.read_parquet(path)
    finished = frame["status"].isin(["COMPLETED", "EARLY_STOPPED", "ERROR"]).all() if len(frame) else False
    return frame if len(frame) >= space.num_samples and finished else None


def final_pending(space: Space, exp_dir: Path, search: pd.DataFrame) -> int:
    """How many (config, seed) runs of the final stage are not yet in final.parquet."""
    if space.final is None:
        return 0
    top = final_stage.select_top(search, space)
    if top.empty:
        return 0
    done = final_stage.done_pairs(exp_dir / lb.FINAL_FILE)
    return sum(final_stage.pair_of(p) not in done for p in final_stage.final_points(top, space))


def run_search(space: Space, settings: RunSettings, exp_dir: Path, resources: Any, resume: bool, debug: bool) -> pd.DataFrame:
    from ray import tune

    from .ray_glue import collect_trials, make_scheduler, make_search_alg, search_frame

    if resume:
        frame = completed_search(space, exp_dir)
        if frame is not None:
            print(f"sedtune: the search stage of {exp_dir} is complete ({len(frame)} trials); not rerun", flush=True)
            return frame
    trainable = _trainable(settings, resources)
    keys = [p for p in space.params]
    printer = ProgressPrinter("search", space.metric, keys, space.scheduler.max_epochs, space.max_failures)
    if resume and tune.Tuner.can_restore(str(exp_dir)):
        print(f"sedtune: restoring the search in {exp_dir}", flush=True)
        tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={},
            tune_config=tune.TuneConfig(
                search_alg=make_search_alg(space, resources.max_concurrent),
                scheduler=make_scheduler(space),
                metric=space.metric,
                mode=space.mode,
                num_samples=space.num_samples,
                max_concurrent_trials=resources.max_concurrent,
                trial_dirname_creator=_trial_dirname,
                trial_name_creator=_trial_dirname,
                reuse_actors=True,
            ),
            run_config=_run_config(exp_dir.parent, exp_dir.name, [printer], space, debug),
        )
    result_grid = _fit(tuner)
    frame = search_frame(collect_trials(result_grid), space)
    metadata = lb.run_metadata(
        space.text, "search", space.metrics,
        extra={"space_path": space.path.as_posix(), "data": settings.data or "embedded",
               "experiment": str(exp_dir), "mode": space.mode},
    )
    lb.write_parquet_atomic(frame, exp_dir / lb.SEARCH_FILE, metadata)
    if _interrupted(result_grid, space.num_samples):
        raise Interrupted("search")
    return frame


def _trial_dirname(trial: Any) -> str:
    from .ray_glue import trial_dirname

    return trial_dirname(trial)


def run_final(space: Space, settings: RunSettings, exp_dir: Path, resources: Any, search: pd.DataFrame, debug: bool) -> pd.DataFrame | None:
    from ray import tune

    from .ray_glue import make_point_searcher

    if space.final is None:
        return None
    top = final_stage.select_top(search, space)
    if top.empty:
        print("sedtune: no search trial produced a selection value; skipping the final stage", flush=True)
        return None
    points = final_stage.final_points(top, space)
    final_path = exp_dir / lb.FINAL_FILE
    done = final_stage.done_pairs(final_path)
    remaining = [p for p in points if final_stage.pair_of(p) not in done]
    metadata = lb.run_metadata(
        space.text, "final", space.metrics,
        extra={"space_path": space.path.as_posix(), "data": settings.data or "embedded",
               "experiment": str(exp_dir), "final": dataclasses.asdict(space.final),
               "top_configs": list(top["config_id"])},
    )
    if remaining:
        print(
            f"sedtune: final stage: {len(top)} configs x {len(space.final.seeds)} seeds, "
            f"{space.final.epochs} epochs; {len(remaining)} runs to do ({len(points) - len(remaining)} already done)",
            flush=True,
        )
        wanted = {final_stage.pair_of(p) for p in remaining}
        name, restore = final_stage.plan_experiment(exp_dir, wanted, lambda p: tune.Tuner.can_restore(str(p)))
        trainable = _trainable(settings, resources)
        if restore:
            tuner = tune.Tuner.restore(str(exp_dir / name), trainable=trainable, resume_errored=False)
        else:
            printer = ProgressPrinter("final", space.metric, [], space.final.epochs, space.max_failures)
            recorder = final_stage.FinalRecorder(str(final_path), metadata, list(space.params))
            tuner = tune.Tuner(
                trainable,
                param_space={},
                tune_config=tune.TuneConfig(
                    search_alg=make_point_searcher(remaining, space.metric, space.mode),
                    metric=space.metric,
                    mode=space.mode,
                    num_samples=len(remaining),
                    max_concurrent_trials=resources.max_concurrent,
                    trial_dirname_creator=_trial_dirname,
                    trial_name_creator=_trial_dirname,
                    reuse_actors=True,
                ),
                run_config=_run_config(exp_dir, name, [printer, recorder], space, debug),
            )
        result_grid = _fit(tuner)
        if _interrupted(result_grid, len(remaining) if not restore else None):
            raise Interrupted("final")
    final = lb.read_parquet(final_path) if final_path.is_file() else pd.DataFrame()
    summary = final_stage.summary_frame(final, list(top["config_id"]))
    lb.write_parquet_atomic(summary, exp_dir / lb.FINAL_SUMMARY_FILE, {**metadata, "stage": "final_summary"})
    return summary


# ----------------------------------------------------------------------------- summary
def print_summary(space: Space, search: pd.DataFrame, summary: pd.DataFrame | None, exp_dir: Path) -> None:
    from sed.config import PAPER_TABLE1

    counts = search["status"].value_counts().to_dict() if not search.empty else {}
    print()
    print(f"== search {space.name}: {len(search)} trials "
          + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())) + " ==")
    columns = ["trial_id", "status", "label", *space.params.keys(), "val_macro_f1", "val_psds",
               "epochs_run", "wall_seconds"]
    if "pareto" in search:
        columns.append("pareto")
    print(lb.format_table(search, columns, max_rows=15))
    errors = search[search["status"] == "ERROR"] if not search.empty else search
    for row in errors.itertuples(index=False):
        print(f"  {row.trial_id} failed: {row.error}")
    if "failures" in search:
        retried = search[(search["status"] != "ERROR") & (search["failures"] > 0)]
        for row in retried.itertuples(index=False):
            print(f"  {row.trial_id} {row.status.lower()} after {row.failures} failed attempt(s), "
                  "each resumed from its last checkpoint")
    if "pareto" in search and search["pareto"].any():
        print("Pareto front over " + " / ".join(space.metrics) + ": "
              + ", ".join(search.loc[search["pareto"], "trial_id"]))
    if summary is not None and not summary.empty:
        print()
        print(f"== final stage: public evaluation set, mean [95 % CI] over seeds ==")
        rows = []
        for row in summary.itertuples(index=False):
            item = {"rank": row.rank, "config": row.label or row.config_id, "seeds": row.n_seeds}
            for metric in ("eval_macro_f1", "eval_psds"):
                mean = getattr(row, f"{metric}_mean", float("nan"))
                low = getattr(row, f"{metric}_ci95_low", float("nan"))
                high = getattr(row, f"{metric}_ci95_high", float("nan"))
                item[metric] = f"{mean:.4f} [{low:.4f}, {high:.4f}]" if pd.notna(low) else f"{mean:.4f}"
            if row.label in PAPER_TABLE1:
                item["paper macro/psds"] = "{:.3f}/{:.3f}".format(*PAPER_TABLE1[row.label])
            rows.append(item)
        frame = pd.DataFrame(rows)
        print(lb.format_table(frame, list(frame.columns)))
    print()
    print(f"leaderboards: {exp_dir / lb.SEARCH_FILE}"
          + (f", {exp_dir / lb.FINAL_FILE}, {exp_dir / lb.FINAL_SUMMARY_FILE}" if summary is not None else ""))
    print(f"TensorBoard:  tensorboard --logdir {exp_dir}")


# ----------------------------------------------------------------------------- main
def _user_error(message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sed.config import ConfigError

    from .ray_glue import ClusterError, derive_resources

    try:
        settings, space, exp_dir = resolve_settings(args)
        check_output_dir(exp_dir.parent)
        check_address(args.address)
    except (SpaceError, UsageError, ConfigError) as exc:
        return _user_error(str(exc), args.debug)
    out = exp_dir.parent
    resume_cmd = resume_command(out, exp_dir.name, args.address)

    _SIGNALLED["count"] = 0

    def on_sigterm(signum: int, frame: Any) -> None:
        # Hand SIGTERM to the SIGINT path: inside Tuner.fit Ray stops gracefully and saves state.
        _SIGNALLED["count"] += 1
        signal.raise_signal(signal.SIGINT)

    # Installed now and again after ray.init (Ray's core installs its own fatal-signal handler).
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    ray_started = False
    try:
        print(space.summary(), flush=True)
        if args.resume:
            search = completed_search(space, exp_dir)
            if search is not None and (args.no_final or final_pending(space, exp_dir, search) == 0):
                # nothing left to run: no need to start Ray
                print(f"sedtune: {exp_dir} is complete; nothing to resume", flush=True)
                summary_path = exp_dir / lb.FINAL_SUMMARY_FILE
                summary = lb.read_parquet(summary_path) if summary_path.is_file() and not args.no_final else None
                print_summary(space, search, summary, exp_dir)
                return 0
        # Checks that can refuse the run come before anything is written to the
        # experiment folder: the data (without starting Ray), then the cluster.
        try:
            prepare_datasets(space, settings)
        except ValueError as exc:  # DatasetError / ConfigError: names the file and the fix
            return _user_error(str(exc), args.debug)
        ray_started = start_ray(args.address, args.debug)
        signal.signal(signal.SIGTERM, on_sigterm)
        import ray

        try:
            resources = derive_resources(space, ray.cluster_resources())
        except ClusterError as exc:
            return _user_error(str(exc), args.debug)
        exp_dir.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            (exp_dir / RUN_FILE).write_text(json.dumps(dataclasses.asdict(settings), indent=1))
        print(f"sedtune: per trial {resources.cpu:g} CPU, {resources.gpu:g} GPU; "
              f"up to {resources.max_concurrent} trials at once; experiment {exp_dir}", flush=True)
        search = run_search(space, settings, exp_dir, resources, args.resume, args.debug)
        summary = None
        if not args.no_final:
            summary = run_final(space, settings, exp_dir, resources, search, args.debug)
        print_summary(space, search, summary, exp_dir)
        if (search["status"] == "ERROR").all() if not search.empty else True:
            print("error: every search trial failed; see the errors above", file=sys.stderr)
            return 1
        return 0
    except (Interrupted, KeyboardInterrupt):
        if not (exp_dir / RUN_FILE).is_file():
            # stopped while the data or the cluster were being checked: nothing to resume
            print("\nsedtune: interrupted before the experiment started; nothing was written. "
                  "Run the same command again.", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        print(f"\nsedtune: interrupted; the state is saved. Resume with:\n  {resume_cmd}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if ray_started:
            import ray

            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
