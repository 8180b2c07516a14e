"""`python -m search.run --space spaces/latent.yaml` -- the search, then the final stage.

Usage::

    python -m search.run --space FILE [--data ROOT] [--out DIR] [--name NAME]
                         [--address ADDR] [--resume] [--num-samples N]
                         [--max-epochs N] [--cache-dir DIR] [--storage URL] [--no-final] [--no-report] [--verbose] [--debug]

Steps (docs/design.md, "Run"):

1. validate everything before Ray starts: the space (`search.space`), the
   command line, the experiment folder `OUT/NAME` (a new run refuses an
   existing folder, `--resume` refuses a missing one), the dataset
   (`sed.training.trainer.prepare_data` builds the cached features once here, so
   trials only read them);
2. start Ray locally (all CPUs of the machine; token authentication with a
   token of this run, unless `RAY_AUTH_MODE` is set: `search.ray_auth`) or
   join `--address` (a warning when that cluster asks for no token); check
   the per-trial resources against the cluster (a GPU request on a GPU-less
   cluster is refused);
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
(config, seed) pairs not yet in `final.parquet`. Restoring unpickles Ray's
and Optuna's state from the folder, which runs the code a pickle names:
resume only experiment folders you trust. A database password is never
stored: the run file holds the storage URL masked (`search.masking`), and
`--resume` takes the password from `--storage URL` given again or from
where the database library keeps it (`search.rdb_storage`).

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

from sed.config import ConfigError, TrainConfig
from sed.data.prepare import PreparedData

from . import leaderboard as lb
from . import masking
from .console import print_summary
from .prepared import PREPARED_DIR, save_for_trials
from .ray_auth import cluster_auth_warning
from .resources import ClusterError, derive_resources
from .space import Space, SpaceError, parse_space
from .stages import Experiment, Interrupted, completed_search, final_pending, run_final, run_search
from .study_storage import StorageError, dashboard_command, storage_location, study_exists
from .tuner import StopSignals, start_ray

RUN_FILE = "sedtune_run.json"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """A command-line mistake; the message says how to fix it."""


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Ray Tune + Optuna search over consistency augmentations for SED, then a multi-seed "
        "final stage scored on the public evaluation set.",
    )
    parser.add_argument(
        "--space",
        type=Path,
        help="search space YAML (spaces/*.yaml), or - to read it from stdin; optional with --resume",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fix a TrainConfig value for every trial (added to the space's fixed:, YAML value); "
        "repeatable, e.g. --set epochs=3 --set device=cpu",
    )
    parser.add_argument("--data", type=Path, help="DESED-format dataset root (default: the embedded dataset)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results/)")
    parser.add_argument("--name", help="experiment name (default: the space's name)")
    parser.add_argument("--address", help="address of an existing Ray cluster (default: start one locally)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted experiment OUT/NAME")
    parser.add_argument("--num-samples", type=int, help="override the space's num_samples")
    parser.add_argument("--max-epochs", type=int, help="override scheduler.max_epochs (and cap final.epochs)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="feature/dataset cache (default: $SEDTUNE_CACHE or ~/.cache/sedtune); same flag in sed.train",
    )
    parser.add_argument("--no-final", action="store_true", help="stop after the search stage")
    parser.add_argument(
        "--storage",
        help="the Optuna study's storage: a database URL (sqlite:///PATH, postgresql://...) "
        "or a journal file (default: the space's storage:, else OUT/NAME/optuna.journal)",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not write OUT/NAME/report.html at the end (python -m search.report OUT/NAME does)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="every trial epoch on the console (always in OUT/NAME/progress.log) and Ray's own table",
    )
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
    #: the Optuna study's storage (search.study_storage); None: in memory (grid spaces, runs of older versions)
    storage: str | None = None

    def space(self) -> Space:
        space = parse_space(self.space_text, self.space_path)
        return space.with_overrides(num_samples=self.num_samples, max_epochs=self.max_epochs)


STDIN_SPACE = Path("stdin.yaml")  # the path a space read from stdin is named by (default name: stdin)


def read_space_text(args: argparse.Namespace) -> tuple[str, Path]:
    """The text of --space (a file, or stdin for `-`) with the --set values added to its fixed:."""
    if str(args.space) == "-":
        text, path = sys.stdin.read(), STDIN_SPACE
    else:
        try:
            text, path = args.space.read_text(encoding="utf-8"), args.space.resolve()
        except FileNotFoundError:
            raise SpaceError(
                f"{args.space}: no such space file; give a path such as spaces/demo.yaml, or - to read it from stdin"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpaceError(f"{args.space}: cannot read the space file ({exc})") from None
    return with_fixed_values(text, path, args.overrides), path


def with_fixed_values(text: str, path: Path, pairs: Sequence[str]) -> str:
    """Space text with `--set KEY=VALUE` pairs added to (or replacing in) `fixed:`; the text itself if none."""
    if not pairs:
        return text
    import yaml

    from sed.config import parse_set_arguments

    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SpaceError(f"{path}: the space is not a YAML mapping; check the file")
    fixed = dict(data.get("fixed") or {})
    params = data.get("params") or {}
    for key, value in parse_set_arguments(list(pairs)).items():
        if key in params:
            raise UsageError(
                f"--set {key}=...: {key} is searched (params: in {path}); remove it from params: "
                "to fix it, or leave --set out"
            )
        fixed[key] = yaml.safe_load(value) if value.strip() else value
    data["fixed"] = fixed
    return yaml.safe_dump(data, sort_keys=False)


def resolve_settings(args: argparse.Namespace) -> tuple[RunSettings, Space, Path]:
    """Settings, validated space and experiment folder; refuses bad combinations (UsageError/SpaceError)."""
    out = args.out.expanduser().resolve()
    if args.resume:
        if args.name is None and args.space is None:
            raise UsageError("--resume needs --name NAME (or --space FILE, whose name is the default) to find OUT/NAME")
        if args.overrides:
            raise UsageError("--resume: --set would change the experiment; leave it out (the run keeps its values)")
        given = read_space_text(args) if args.space is not None else None
        given_space = parse_space(*given) if given is not None else None
        if given_space is not None and given_space.storage and "://" in given_space.storage:
            masking.remember(given_space.storage)  # its password, for this run only
        name = args.name or given_space.name
        exp_dir = out / name
        run_file = exp_dir / RUN_FILE
        if not exp_dir.is_dir():
            raise UsageError(f"--resume: no experiment at {exp_dir}; check --out/--name, or start it without --resume")
        if not run_file.is_file():
            raise UsageError(f"--resume: {exp_dir} is not a sedtune experiment (no {RUN_FILE}); check --out/--name")
        stored = RunSettings(**json.loads(run_file.read_text()))
        if stored.storage and "://" in stored.storage:  # a run file of an older version may hold it unmasked
            stored.storage = masking.remember(stored.storage)
        if given is not None:
            if masking.mask_text(given[0]) != stored.space_text:
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
            raise UsageError(
                f"--resume: --data {args.data} differs from the original run ({stored.data}); leave it out"
            )
        if args.storage is not None and storage_location(args.storage, exp_dir) != stored.storage:
            raise UsageError(
                f"--resume: --storage {masking.mask_url(args.storage)} differs from the original run "
                f"({stored.storage}); "
                "leave it out"
            )
        if args.cache_dir is not None and str(args.cache_dir.expanduser().resolve()) != stored.cache_dir:
            raise UsageError(f"--resume: --cache-dir differs from the original run ({stored.cache_dir}); leave it out")
        return stored, stored.space(), exp_dir
    if args.space is None:
        raise UsageError("give --space FILE (e.g. --space spaces/demo.yaml), or --resume with --name")
    space = parse_space(*read_space_text(args)).with_overrides(num_samples=args.num_samples, max_epochs=args.max_epochs)
    name = args.name or space.name
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"--name {name!r}: give a plain folder name")
    exp_dir = out / name
    if exp_dir.exists():
        raise UsageError(
            f"{exp_dir} already exists: add --resume to continue that experiment, or choose another --name (or --out)"
        )
    data = None
    if args.data is not None:
        data_path = args.data.expanduser().resolve()
        if not data_path.is_dir():
            raise UsageError(f"--data {args.data}: no such folder; give the root of a DESED-format dataset")
        data = str(data_path)
    storage = None
    if not space.is_grid:
        configured = args.storage or space.storage
        storage = storage_location(configured, exp_dir)  # default: a new file in the new experiment folder
        try:
            taken = bool(configured) and study_exists(storage, name)
        except StorageError as exc:
            raise UsageError(str(exc)) from None
        if taken:
            raise UsageError(
                f"storage {storage} already holds a study named {name!r} (another experiment's trials); "
                "choose another --name, or delete that study (optuna delete-study)"
            )
    elif args.storage is not None:
        raise UsageError("--storage: a grid space has no Optuna study; leave it out")
    settings = RunSettings(
        space_path=str(space.path),
        space_text=masking.mask_text(space.text),  # a password in the space's storage: is masked
        num_samples=args.num_samples,
        max_epochs=args.max_epochs,
        data=data,
        cache_dir=str(args.cache_dir.expanduser().resolve()) if args.cache_dir else None,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        storage=storage,
    )
    return settings, space, exp_dir


def resume_command(out: Path, name: str, address: str | None) -> str:
    parts = [sys.executable or "python", "-m", "search.run", "--resume", "--out", str(out), "--name", name]
    if address:
        parts += ["--address", address]
    return " ".join(shlex.quote(p) for p in parts)


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


# ----------------------------------------------------------------------------- main
def _user_error(message: str, debug: bool) -> int:
    if debug:
        print(masking.mask_text(traceback.format_exc()), end="", file=sys.stderr)
    print(f"error: {masking.mask_text(message)}", file=sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    masking.install_excepthook()  # an unexpected error's traceback is printed with secrets masked
    try:
        settings, space, exp_dir = resolve_settings(args)
        check_output_dir(exp_dir.parent)
        check_address(args.address)
    except (SpaceError, UsageError, ConfigError) as exc:
        return _user_error(str(exc), args.debug)
    out = exp_dir.parent
    resume_cmd = resume_command(out, exp_dir.name, args.address)

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
        except ValueError as exc:  # DatasetError / ConfigError: names the file and the fix
            return _user_error(str(exc), args.debug)
        ray_started = start_ray(args.address, args.debug)
        signal.signal(signal.SIGTERM, on_sigterm)
        if args.address:
            warning = cluster_auth_warning(args.address)
            if warning:
                print(f"sedtune: warning: {warning}", file=sys.stderr, flush=True)
        try:
            resources = derive_resources(space, ray.cluster_resources())
        except ClusterError as exc:
            return _user_error(str(exc), args.debug)
        exp_dir.mkdir(parents=True, exist_ok=True)
        save_prepared_datasets(exp_dir, prepared, settings)
        if not args.resume:
            (exp_dir / RUN_FILE).write_text(json.dumps(dataclasses.asdict(settings), indent=1))
        print(
            f"sedtune: per trial {resources.cpu:g} CPU, {resources.gpu:g} GPU; "
            f"up to {resources.max_concurrent} trials at once; experiment {exp_dir}",
            flush=True,
        )
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
        )
        if settings.storage:
            print(
                f"sedtune: Optuna study {exp_dir.name!r} in {settings.storage} "
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
        if (search["status"] == "ERROR").all() if not search.empty else True:
            print("error: every search trial failed; see the errors above", file=sys.stderr)
            return 1
        return 0
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
        print(f"\nsedtune: interrupted; the state is saved. Resume with:\n  {resume_cmd}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if ray_started:
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
