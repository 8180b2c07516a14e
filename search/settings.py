"""The command line of `python -m search.run` and the settings that define an experiment.

`build_parser` is the command line; `resolve_settings` turns it into the `RunSettings`
(stored in `OUT/NAME/sedtune_run.json`, so `--resume` continues with the values the run
was started with), the checked space and the experiment folder, refusing bad
combinations with a `UsageError` or `SpaceError` that says how to fix them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from sed.errors import UsageError

from . import masking
from .remote_storage import download, is_uri, join
from .space import Space, SpaceError, parse_space
from .study_storage import StorageError, storage_location, study_exists

RUN_FILE = "sedtune_run.json"


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
    parser.add_argument(
        "--out",
        default="results",
        help="results folder (default: results/), or a storage URI every node reaches (s3://BUCKET/PREFIX): "
        "Ray's experiment and trial files go there, the leaderboards and report are written in "
        "--driver-dir and copied there at the end",
    )
    parser.add_argument(
        "--driver-dir",
        type=Path,
        default=Path("results"),
        help="with a URI --out: where the driver writes leaderboards, journal and report (default: results/)",
    )
    parser.add_argument("--name", help="experiment name (default: the space's name)")
    parser.add_argument("--address", help="address of an existing Ray cluster (default: start one locally)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted experiment OUT/NAME")
    parser.add_argument(
        "--trials-per-gpu",
        type=int,
        metavar="N",
        help="trials sharing one GPU (default: the space's resources.trials_per_gpu, else the "
        "measured default of search.packing); every GPU of the cluster gets N trials",
    )
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
        "--plan",
        action="store_true",
        help="print the plan and exit without training: trials, epochs, steps per epoch, trials at "
        "once on this cluster (or --address), estimated wall time and GPU-hours",
    )
    parser.add_argument(
        "--plan-cluster",
        metavar="CPUS:GPUS[:NODES]",
        help="--plan for a cluster not at hand, e.g. 64:8 = one node with 64 CPUs and 8 H200s",
    )
    parser.add_argument(
        "--plan-data", choices=["desed2020"], help="--plan with DESED 2020's part sizes without the data at hand"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="with --plan: time a few training steps on the cluster itself instead of the measured tables",
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
    #: a URI --out: where Ray keeps the experiment (search.remote_storage); None: the local folder
    remote: str | None = None

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
    remote = str(args.out).rstrip("/") if is_uri(args.out) else None
    out = (args.driver_dir if remote else Path(args.out)).expanduser().resolve()
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
        if remote and not exp_dir.is_dir():
            fetch_driver_files(remote, name, exp_dir)
        if not exp_dir.is_dir():
            raise UsageError(f"--resume: no experiment at {exp_dir}; check --out/--name, or start it without --resume")
        if not run_file.is_file():
            raise UsageError(f"--resume: {exp_dir} is not a sedtune experiment (no {RUN_FILE}); check --out/--name")
        stored = RunSettings(**json.loads(run_file.read_text()))
        if stored.storage and "://" in stored.storage:  # a run file of an older version may hold it unmasked
            stored.storage = masking.remember(stored.storage)
        if remote != stored.remote:
            raise UsageError(
                f"--resume: --out {args.out} differs from the original run's "
                f"({stored.remote or out}); give the same --out"
            )
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
                f"({stored.storage}); leave it out"
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
        remote=remote,
    )
    return settings, space, exp_dir


def fetch_driver_files(remote: str, name: str, exp_dir: Path) -> None:
    """`--resume` with a URI --out on a driver without the experiment: its driver files from URI/NAME.

    They land in a hidden folder renamed to `exp_dir` once complete, so an interrupted copy leaves no
    half experiment behind."""
    source = join(remote, name)
    partial = exp_dir.parent / f".{name}.fetching"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        copied = download(source, partial)
    except Exception as exc:  # unreachable endpoint, missing credentials, no such bucket
        shutil.rmtree(partial, ignore_errors=True)
        raise UsageError(
            f"--resume: {exp_dir} is not on this driver and {source} could not be read "
            f"({type(exc).__name__}: {exc}); check --out and the storage credentials (e.g. AWS_ENDPOINT_URL)"
        ) from None
    if RUN_FILE not in copied:
        shutil.rmtree(partial, ignore_errors=True)
        raise UsageError(f"--resume: no experiment at {source} (no {RUN_FILE}) nor in {exp_dir}; check --out/--name")
    partial.rename(exp_dir)
    print(f"sedtune: --resume: copied {', '.join(copied)} from {source} into {exp_dir}", flush=True)


def resume_command(out: Path, name: str, address: str | None, remote: str | None = None) -> str:
    parts = [sys.executable or "python", "-m", "search.run", "--resume", "--out", remote or str(out), "--name", name]
    if remote:
        parts += ["--driver-dir", str(out)]
    if address:
        parts += ["--address", address]
    return " ".join(shlex.quote(p) for p in parts)
