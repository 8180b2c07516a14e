"""Ray's state files in an experiment folder, checked before `--resume`: one cut short is mended or set aside.

Ray Tune keeps a stage's state in three files a session (`<session>` is the
start time of the run that wrote them) in the experiment folder:
`experiment_state-<session>.json` (the trials), `search_gen_state-<session>.json`
and `searcher-state-<session>.pkl` (the searcher; pickles). The driver writes
them in its local staging folder
(`<Ray temp>/session_*/artifacts/<session>/<name>/driver_artifacts`) and a
background thread copies that folder to the experiment folder. Neither step
is atomic, and the next snapshot rewrites the staging file in place while the
previous copy may still be reading it. A run killed at the wrong moment can
leave a file cut short in the experiment folder (seen once in CI:
`JSONDecodeError: Unterminated string ... (char 47376)` in
`experiment_state-*.json` after a SIGKILL), and Ray's restore then logs
"Failed to restore the run state" and starts the experiment over without a
word to the caller. (ray-project/ray#58179 is the same cut-short write for
`tuner.pkl`.)

`check_experiment_state(path)`, run before `Tuner.restore`:

- files that read back whole are left alone;
- a session with a cut file takes that snapshot's files from Ray's staging
  folder of the run that wrote it, when each is whole there and the state
  there names every trial the cut one names (the killed driver ran on this
  machine, and its Ray temp folder was not cleared);
- otherwise the files of that session are set aside (renamed `*.torn`;
  nothing is deleted), so Ray restores the previous session's snapshot;
- with no whole session left, or `tuner.pkl` itself cut short (written
  straight into the folder, with no copy anywhere), `TornState` names the
  folder and the ways on.

Each action is returned as a line for the console.

`refuse_silent_restart(path)`, around the restored Tuner's `fit`: when Ray
still cannot read the state (any other reason), its "Failed to restore the
run state" log call raises `RestoreFailed` instead of letting Ray start the
experiment over; both errors are `CannotResume` (search.run: exit 2).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import pickletools
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sed.errors import UserError

#: Ray's names for a session's state files (ray.tune: TuneController, SearchGenerator, Searcher).
STATE_TEMPLATES = ("experiment_state-{}.json", "search_gen_state-{}.json", "searcher-state-{}.pkl")
EXPERIMENT_STATE = STATE_TEMPLATES[0]
#: The pickled Tuner, written straight into the experiment folder (no staging copy).
TUNER_FILE = "tuner.pkl"
#: Suffix of a state file set aside (no longer matched by Ray's patterns).
TORN_SUFFIX = ".torn"
#: A trial id as the trial states inside experiment_state name it (JSON inside JSON: quotes escaped).
_TRIAL_ID = re.compile(r'trial_id\\*"\s*:\s*\\*"(\w+)')


#: Ray's TuneController logs this (with the exception) when it cannot read an experiment's state,
#: then starts the experiment over (unless `fail_fast`, which also stops a run at its first failed trial).
RESTORE_FAILED_LOG = "Failed to restore the run state"
RAY_CONTROLLER_LOGGER = "ray.tune.execution.tune_controller"


def ways_on(path: str) -> str:
    """What a user whose experiment cannot be resumed can do (every `CannotResume` ends with it)."""
    return (
        f"Start the search again under a new --name, or move {path} away and run the search's command "
        "again (without --resume)"
    )


#: Said when Ray's own state is lost: what sedtune and Optuna wrote is not.
INTACT = "The trials' own folders and the Optuna study are intact."


class CannotResume(UserError):
    """Ray's state of an experiment cannot be restored; nothing was run."""


class TornState(CannotResume):
    """No whole state snapshot of a Ray experiment is left to resume from."""


class RestoreFailed(CannotResume):
    """Ray could not restore an experiment's state for another reason (its own error is the cause)."""


class _RefuseRestart(logging.Filter):
    """Raises `RestoreFailed` from Ray's "Failed to restore the run state" log record (see `refuse_silent_restart`)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(RESTORE_FAILED_LOG):
            cause = record.exc_info[1] if record.exc_info else None
            raise RestoreFailed(
                f"cannot resume {self.path}: Ray could not restore its state "
                f"({type(cause).__name__ if cause else 'no error given'}: {cause}) and would start the "
                f"experiment over; nothing was run. {ways_on(self.path)}; --debug shows Ray's traceback"
            ) from cause
        return True


@contextmanager
def refuse_silent_restart(path: str | Path) -> Iterator[None]:
    """Around the `fit` of a restored Tuner: Ray's restart after a failed restore becomes `RestoreFailed`.

    Ray catches the error, logs it and goes on with a fresh experiment in the same folder (its
    searcher new, finished trials forgotten). A filter on its controller's logger raises from that
    log call instead, inside the controller's constructor: before any trial is made."""
    logger = logging.getLogger(RAY_CONTROLLER_LOGGER)
    refuse = _RefuseRestart(str(path))
    logger.addFilter(refuse)
    try:
        yield
    finally:
        logger.removeFilter(refuse)


def session_files(names: list[str]) -> dict[str, list[str]]:
    """Ray's state files among `names`, by session (oldest session first)."""
    sessions: dict[str, list[str]] = {}
    for template in STATE_TEMPLATES:
        head, tail = template.split("{}")
        for name in fnmatch.filter(names, template.format("*")):
            sessions.setdefault(name[len(head) : len(name) - len(tail)], []).append(name)
    return dict(sorted(sessions.items()))


def is_whole(name: str, data: bytes) -> bool:
    """Whether a state file's bytes are a complete JSON document or pickle (a cut one is neither)."""
    if name.endswith(".json") and not data.startswith(b"\x80"):
        try:
            json.loads(data)
        except ValueError:
            return False
        return True
    try:  # search_gen_state-*.json and searcher-state-*.pkl are pickles; read the opcodes, run nothing
        for _ in pickletools.genops(data):
            pass
    except Exception:  # pickletools raises ValueError for data that ends before STOP, others for garbage
        return False
    return bool(data)


def trial_ids(data: bytes) -> set[str]:
    """The trial ids an experiment_state file (whole or cut) names."""
    return set(_TRIAL_ID.findall(data.decode("utf-8", errors="replace")))


def ray_temp_roots() -> list[Path]:
    """Folders where Ray keeps its sessions on this machine (the ways ray picks one, plus the default)."""
    candidates = []
    for variable in ("RAY_TMPDIR", "TMPDIR"):
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]) / "ray")
    candidates.append(Path("/tmp/ray") if sys.platform != "win32" else Path(os.environ.get("TEMP", ".")) / "ray")
    roots: list[Path] = []
    for path in candidates:
        if path.is_dir() and all(path.resolve() != r.resolve() for r in roots):
            roots.append(path)
    return roots


def staging_folder(
    experiment_name: str, session: str, wanted_ids: set[str], roots: list[Path] | None = None
) -> Path | None:
    """Ray's local staging folder of the run that wrote `session`: the newest whose state is whole and
    names every trial in `wanted_ids` (another experiment of the same name started in the same second
    would name other trials)."""
    found: list[tuple[float, Path]] = []
    seen: set[Path] = set()
    name = EXPERIMENT_STATE.format(session)
    for root in ray_temp_roots() if roots is None else roots:
        for state in root.glob(f"session_*/artifacts/*/{experiment_name}/driver_artifacts/{name}"):
            real = state.resolve()
            if real in seen:  # session_latest is a link to one of them
                continue
            seen.add(real)
            try:
                data = state.read_bytes()
                mtime = state.stat().st_mtime
            except OSError:
                continue
            if is_whole(name, data) and wanted_ids <= trial_ids(data):
                found.append((mtime, real.parent))
    return max(found)[1] if found else None


def check_experiment_state(path: str | Path, roots: list[Path] | None = None) -> list[str]:
    """Mend or set aside the cut-short state files of the Ray experiment at `path` (a folder or a
    pyarrow URI) before it is restored; what was done, a line each. `roots`: Ray temp folders to
    look in for the staging copies (default: `ray_temp_roots()`).

    Raises `TornState` when no session with whole files is left."""
    import pyarrow.fs as pafs

    text = str(path)
    if "://" in text:
        fs, folder = pafs.FileSystem.from_uri(text)
    else:
        fs, folder = pafs.LocalFileSystem(), str(Path(text).resolve())
    folder = folder.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    names = [info.base_name for info in infos if info.type == pafs.FileType.File]
    sessions = session_files(names)
    done: list[str] = []

    def read(name: str) -> bytes:
        with fs.open_input_stream(f"{folder}/{name}") as stream:
            return stream.read()

    def write(name: str, data: bytes) -> None:
        """Whole or not at all: a new name, then a rename over the cut file (one PUT on object stores)."""
        partial = f"{folder}/{name}.part"
        with fs.open_output_stream(partial) as stream:
            stream.write(data)
        fs.move(partial, f"{folder}/{name}")

    if TUNER_FILE in names and not is_whole(TUNER_FILE, read(TUNER_FILE)):
        raise TornState(
            f"cannot resume {text}: its {TUNER_FILE} (the Tuner Ray rebuilds) was cut short, most likely by "
            "a kill while Ray wrote it as the run started or resumed (ray-project/ray#58179), and Ray keeps "
            f"no other copy. {INTACT} {ways_on(text)}"
        )

    experiment_name = Path(folder).name
    for session in reversed(list(sessions)):  # the newest first: Ray restores the newest session
        files = sessions[session]
        contents = {name: read(name) for name in files}
        cut = [name for name in files if not is_whole(name, contents[name])]
        if not cut:
            if done:
                done.append(f"sedtune: resuming from Ray's snapshot of the run started {session}")
            return done
        state = contents.get(EXPERIMENT_STATE.format(session), b"")
        staging = staging_folder(experiment_name, session, trial_ids(state), roots)
        copies = {}  # the whole snapshot from there, not only the cut files: one moment's state
        for name in files:
            copy = staging / name if staging is not None else None
            data = copy.read_bytes() if copy is not None and copy.is_file() else b""
            if is_whole(name, data):
                copies[name] = data
        if all(name in copies for name in cut):
            for name, data in copies.items():
                write(name, data)
            done.append(
                f"sedtune: {', '.join(cut)} in {text} was cut short (the run was killed "
                f"while Ray wrote it); mended from Ray's local copy of that snapshot in {staging}"
            )
            return done
        for name in files:  # this session cannot be restored: set it aside, whole, under another name
            fs.move(f"{folder}/{name}", f"{folder}/{name}{TORN_SUFFIX}")
        done.append(
            f"sedtune: Ray's state of the run started {session} in {text} was cut short (the run was "
            f"killed while Ray wrote it) and no whole copy of it is left on this machine: its "
            f"{len(files)} files are kept as *{TORN_SUFFIX}"
        )
    if sessions:
        raise TornState(
            f"cannot resume {text}: Ray's state of every run in it was cut short (the run was killed "
            f"while Ray wrote it) and no whole copy is left on this machine; the files are kept as "
            f"*{TORN_SUFFIX}. {INTACT} {ways_on(text)}"
        )
    return done
