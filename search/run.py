"""`python -m search.run --space spaces/latent.yaml` -- the search, then the final stage.

Usage::

    python -m search.run --space FILE [--data ROOT] [--out DIR|URI] [--driver-dir DIR] [--name NAME]
                         [--address ADDR] [--resume] [--num-samples N] [--trials-per-gpu N]
                         [--max-epochs N] [--cache-dir DIR] [--storage URL] [--no-final] [--no-report] [--verbose] [--debug]
    python -m search.run --space FILE --plan [--probe] [--address ADDR | --plan-cluster CPUS:GPUS[:NODES]]
                         [--plan-data desed2020]      # search.plan: the run's cost, nothing trained

Steps (docs/design.md, "Run"):

1. validate everything before Ray starts: the space (`search.space`), the
   command line, the experiment folder `OUT/NAME` (a new run refuses an
   existing folder, `--resume` refuses a missing one), the dataset
   (`sed.training.trainer.prepare_data` builds the cached features once here, so
   trials only read them);
2. start Ray locally (all CPUs of the machine; `RAY_AUTH_MODE=disabled`
   unless set) or join `--address`; check the per-trial resources against
   the cluster (a GPU request on a GPU-less cluster is refused);
3. search (`search.stages.run_search`): Tuner with
   OptunaSearch(TPESampler(seed), define-by-run space; the study in
   `OUT/NAME/optuna.journal` or `--storage` / the space's `storage:`,
   `search.study_storage`) or the grid's fixed list, ASHA on `training_iteration` (= epochs), checkpoints every epoch,
   storage `OUT/NAME`; a status line and the trial events on the console,
   every epoch in `OUT/NAME/progress.log` (`search.console`; `--verbose`:
   epochs and Ray's table on the console too);
   `search.parquet` when it ends;
4. final stage (`search.stages.run_final`, `search.final`): top-k x seeds
   retrained and scored on the public eval set; `final.parquet`,
   `final_summary.parquet`;
5. a summary table (`search.console.print_summary`) and `OUT/NAME/report.html`
   (`search.report`; `--no-report` leaves it out).

This module is the command line: arguments, the stored settings of an
experiment, the checks before anything starts, signals and exit codes.

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

import dataclasses
import shlex
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from sed.config import TrainConfig
from sed.data.prepare import PreparedData
from sed.errors import UsageError, UserError
from sed.io import write_json

from . import leaderboard as lb
from . import masking
from .cluster_checks import preflight
from .console import print_summary
from .packing import node_resources
from .prepared import PREPARED_DIR, save_for_trials
from .ray_auth import cluster_auth_warning
from .ray_state import CannotResume
from .remote_storage import join, upload
from .resources import derive_resources
from .settings import RUN_FILE, RunSettings, build_parser, read_space_text, resolve_settings, resume_command
from .space import Space, parse_space
from .stages import Experiment, Interrupted, completed_search, final_pending, run_final, run_search
from .study_storage import dashboard_command
from .tuner import StopSignals, start_ray

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


# ----------------------------------------------------------------------------- checks before anything starts
def prepare_datasets(space: Space, settings: RunSettings) -> list[tuple[TrainConfig, PreparedData]]:
    """Build the dataset + cached features + scaler once in the driver (trials then only read them)."""
    from sed.data.prepare import prepare_data

    cache = Path(settings.cache_dir) if settings.cache_dir else None
    prepared = []
    for cfg in space.data_configs():
        started = time.perf_counter()
        prepared.append((cfg, prepare_data(cfg, settings.data, cache, progress=True)))
        print(
            f"sedtune: data ready ({cfg.data or settings.data or 'embedded ' + cfg.embedded_size}) "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return prepared


def save_prepared_datasets(
    exp_dir: Path, prepared: list[tuple[TrainConfig, PreparedData]], settings: RunSettings
) -> None:
    """`OUT/NAME/prepared/<key>.json` per dataset, for the trials (`search.prepared`)."""
    for cfg, data in prepared:
        save_for_trials(exp_dir / PREPARED_DIR, cfg, data, settings.data, settings.cache_dir)


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


def write_report(exp_dir: Path, debug: bool) -> None:
    """`python -m search.report exp_dir`, in process; a failure only warns (the leaderboards are written)."""
    try:
        from .report import build_report

        started = time.perf_counter()
        path = build_report(exp_dir)
        print(f"report:       {path} ({time.perf_counter() - started:.1f} s)", flush=True)
    except Exception as exc:  # the run's results are already on disk: never fail the run here
        if debug:
            print(masking.mask_text(traceback.format_exc()), end="", file=sys.stderr)
        print(
            f"sedtune: warning: report.html was not written ({masking.mask_text(f'{type(exc).__name__}: {exc}')}); "
            f"retry with: python -m search.report {shlex.quote(str(exp_dir))}",
            file=sys.stderr,
            flush=True,
        )


def copy_driver_files(exp_dir: Path, uri: str) -> None:
    """With a URI --out: the driver's files (leaderboards, journal, report, ...) copied next to Ray's."""
    try:
        copied = upload(exp_dir, uri)
        print(f"sedtune: copied {', '.join(copied)} from {exp_dir} to {masking.mask_url(uri)}", flush=True)
    except Exception as exc:  # the files are on the driver: say where, never fail the run here
        print(
            f"sedtune: warning: could not copy {exp_dir} to {masking.mask_url(uri)} "
            f"({masking.mask_text(f'{type(exc).__name__}: {exc}')}); "
            "the files are on the driver",
            file=sys.stderr,
            flush=True,
        )


# ----------------------------------------------------------------------------- main
def plan_command(args: Any) -> int:
    """--plan: the space (with --set, --num-samples, --max-epochs) planned on the cluster; nothing written."""
    from .plan_cli import run_plan

    try:
        check_address(args.address)
        if args.space is None:
            raise UsageError("--plan needs --space FILE")
        space = parse_space(*read_space_text(args)).with_overrides(
            num_samples=args.num_samples, max_epochs=args.max_epochs
        )
    except UserError as exc:
        return _user_error(str(exc), args.debug)
    return run_plan(args, space, args.address)


def _user_error(message: str, debug: bool) -> int:
    if debug:
        print(masking.mask_text(traceback.format_exc()), end="", file=sys.stderr)
    print(f"error: {masking.mask_text(message)}", file=sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    masking.install_excepthook()  # an unexpected error's traceback is printed with secrets masked
    if args.plan:
        return plan_command(args)
    try:
        settings, space, exp_dir = resolve_settings(args)
        check_output_dir(exp_dir.parent)
        check_address(args.address)
    except UserError as exc:
        return _user_error(str(exc), args.debug)
    out = exp_dir.parent
    resume_cmd = resume_command(out, exp_dir.name, args.address, settings.remote)

    signals = StopSignals()

    def on_sigterm(signum: int, frame: Any) -> None:
        # Hand SIGTERM to the SIGINT path: inside Tuner.fit Ray stops gracefully and saves state.
        signals.sigterms += 1
        signal.raise_signal(signal.SIGINT)

    # Installed now and again after ray.init (Ray's core installs its own fatal-signal handler).
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    ray_started = False
    try:
        if args.storage and masking.has_secret(args.storage):
            print(
                "sedtune: warning: the password in --storage is visible to other users of this machine (ps) "
                "and in the Ray cluster's job list while the run lasts; it is written nowhere. Prefer a URL "
                "without it and the password where the database library reads it (PostgreSQL: ~/.pgpass, "
                "PGPASSFILE, PGPASSWORD)",
                file=sys.stderr,
                flush=True,
            )
        print(masking.mask_text(space.summary()), flush=True)
        if args.resume:
            search = completed_search(space, exp_dir)
            if search is not None and (args.no_final or final_pending(space, exp_dir, search) == 0):
                # nothing left to run: no need to start Ray
                print(f"sedtune: {exp_dir} is complete; nothing to resume", flush=True)
                summary_path = exp_dir / lb.FINAL_SUMMARY_FILE
                summary = lb.read_parquet(summary_path) if summary_path.is_file() and not args.no_final else None
                print_summary(space, search, summary, exp_dir)
                if not args.no_report:
                    write_report(exp_dir, args.debug)
                return 0
        # Checks that can refuse the run come before anything is written to the
        # experiment folder: the data (without starting Ray), then the cluster.
        try:
            prepared = prepare_datasets(space, settings)
        except UserError as exc:  # DatasetError / ConfigError: names the file and the fix
            return _user_error(str(exc), args.debug)
        ray_started = start_ray(args.address, args.debug)
        signal.signal(signal.SIGTERM, on_sigterm)
        if args.address:
            warning = cluster_auth_warning(args.address)
            if warning:
                print(f"sedtune: warning: {warning}", file=sys.stderr, flush=True)
        try:
            resources = derive_resources(space, node_resources(ray.nodes()), args.trials_per_gpu)
            preflight(space.path, space.base_config().batch_size, resources, exp_dir.parent, settings.remote)
        except UserError as exc:  # ClusterError
            return _user_error(str(exc), args.debug)
        exp_dir.mkdir(parents=True, exist_ok=True)
        save_prepared_datasets(exp_dir, prepared, settings)
        if not args.resume:
            write_json(exp_dir / RUN_FILE, dataclasses.asdict(settings), indent=1)
        print(f"sedtune: {resources.describe(space.num_samples)}; experiment {exp_dir}", flush=True)
        exp = Experiment(
            space,
            exp_dir,
            settings.data,
            settings.cache_dir,
            resources,
            signals,
            args.debug,
            storage=settings.storage,
            verbose=args.verbose,
            remote=settings.remote,
        )
        if settings.remote:
            print(
                f"sedtune: Ray's experiment and trial files in {exp.ray_dir()}; leaderboards, Optuna journal, "
                f"prepared data, progress.log and report written on the driver in {exp_dir} and copied to "
                f"{exp.ray_dir()} at the end",
                flush=True,
            )
        if settings.storage:
            print(
                f"sedtune: Optuna study {exp_dir.name + ('--GROUP, one per group' if space.groups else '')!r} "
                f"in {settings.storage} "
                f"(live view: {dashboard_command(settings.storage)})",
                flush=True,
            )
        search = run_search(exp, args.resume)
        summary = None
        if not args.no_final:
            summary = run_final(exp, search)
        print_summary(space, search, summary, exp_dir)
        if not args.no_report:
            write_report(exp_dir, args.debug)
        if settings.remote:
            copy_driver_files(exp_dir, exp.ray_dir())
        if (search["status"] == "ERROR").all() if not search.empty else True:
            print("error: every search trial failed; see the errors above", file=sys.stderr)
            return 1
        return 0
    except CannotResume as exc:  # --resume with Ray's state unreadable: cut short with no copy left, or other
        return _user_error(str(exc), args.debug)
    except (Interrupted, KeyboardInterrupt):
        if not (exp_dir / RUN_FILE).is_file():
            # stopped while the data or the cluster were being checked: nothing to resume
            print(
                "\nsedtune: interrupted before the experiment started; nothing was written. "
                "Run the same command again.",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_INTERRUPTED
        if settings.remote:
            copy_driver_files(exp_dir, join(settings.remote, exp_dir.name))
        print(f"\nsedtune: interrupted; the state is saved. Resume with:\n  {resume_cmd}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if ray_started:
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
