"""Where the Optuna study of a search lives, so that it outlasts the run and others can read it.

By default the study is an Optuna journal file inside the experiment folder,
`OUT/NAME/optuna.journal` (`JournalStorage` + `JournalFileBackend`): an
append-only log that any number of processes read while the search writes
it (`optuna.load_study(study_name=NAME, storage=JournalStorage(...))`, or
`optuna-dashboard OUT/NAME/optuna.journal`, which opens an existing file
path as a journal; optuna-dashboard's `_storage_url.guess_storage_from_url`). SQLite was not chosen as the
default: a dashboard polling an SQLite file while trials are told holds
read locks that can make the writer fail with `database is locked` (SQLite's
one-writer locking), which a journal file does not have. A space's
`storage:` key or `search.run --storage` gives a shared location instead: a
database URL (`sqlite:///PATH`, `postgresql://...`, `mysql://...`, through
`RDBStorage`; drivers other than sqlite are not installed by sedtune:
PostgreSQL's is the `postgres` extra, `pip install -e '.[postgres]'`) or
another journal file path.

A database URL's password never reaches a file, a pickle or the console:
`storage_location` returns the URL masked (`postgresql://alice:***@host/db`,
`search.masking`), which is what the run file, the report and every message
show, and `open_storage` connects through `search.rdb_storage`, whose
pickled state (Ray pickles the searcher with its storage) holds only that
masked URL.

The study is named after the experiment (`OUT/NAME` -> `NAME`); a new run
refuses a shared storage that already holds a study of that name (a second
run would add its trials to the first one's). Every study trial carries
the Ray trial id as its `ray_trial_id` user attribute
(`search.searchers.RecordingOptunaSearch`), the key that joins it to
search.parquet's `trial_id`. `--resume` reopens the same study (the
searcher's state, pickled by Ray, holds the storage); trials a killed
driver had asked for but Ray never ran again stay RUNNING in the storage:
`close_orphans` marks them FAIL when the search stage has finished, so the
study's COMPLETE trials are exactly the leaderboard's.
"""

from __future__ import annotations

from pathlib import Path

from . import masking
from .rdb_storage import StorageError

__all__ = ["StorageError"]

JOURNAL_FILE = "optuna.journal"


def storage_location(configured: str | None, exp_dir: Path) -> str:
    """The storage the study of `exp_dir` uses: `configured` (flag or space) or the experiment's journal file."""
    if not configured:
        return str(exp_dir / JOURNAL_FILE)
    if "://" in configured:
        return masking.remember(configured)  # the password stays in this process (search.masking)
    return str(Path(configured).expanduser().resolve())


def open_storage(location: str):
    """An Optuna storage object for `location` (a database URL, masked or not, or a journal file path)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in location:
        from .rdb_storage import SecretFreeRDBStorage

        return SecretFreeRDBStorage(location)  # refusals: StorageError, secrets masked
    path = Path(location)
    if not path.parent.is_dir():
        raise StorageError(f"storage {location}: folder {path.parent} does not exist; create it or give another path")
    # Optuna's default lock (a symlink), the one optuna-dashboard and a plain load_study take too:
    # every writer of the file must use the same kind of lock
    return JournalStorage(JournalFileBackend(str(path)))


def study_exists(location: str, study_name: str) -> bool:
    """Is there already a study `study_name` in `location`? (False when the journal file does not exist yet.)"""
    import optuna

    if "://" not in location:
        path = Path(location)
        if not path.parent.is_dir():
            raise StorageError(
                f"storage {location}: folder {path.parent} does not exist; create it or give another path"
            )
        if not path.is_file():
            return False
    names = [s.study_name for s in optuna.get_all_study_summaries(open_storage(location), include_best_trial=False)]
    return study_name in names


def close_orphans(location: str, study_name: str) -> int:
    """Mark FAIL the trials still RUNNING in a finished search's study (asked for by a killed driver); their number."""
    import optuna
    from optuna.trial import TrialState

    storage = open_storage(location)
    study = optuna.load_study(study_name=study_name, storage=storage)
    study_id = storage.get_study_id_from_name(study_name)
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return len(orphans)


def pareto_trial_ids(location: str, study_name: str) -> set[str]:
    """Ray trial ids of the study's `best_trials` (a multi-objective study: its Pareto front)."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(location))
    return {str(t.user_attrs.get("ray_trial_id")) for t in study.best_trials if "ray_trial_id" in t.user_attrs}


#: How to get optuna-dashboard: sedtune's `dashboard` extra (pyproject.toml), not a core dependency.
DASHBOARD_INSTALL = "pip install 'sedtune[dashboard]'"


def dashboard_command(location: str) -> str:
    """The optuna-dashboard command line that opens `location`, and how to install it when it is missing
    (the `dashboard` extra: `DASHBOARD_INSTALL`).

    A database URL is given without its password: optuna-dashboard's database library finds it
    where the user keeps it (PostgreSQL: ~/.pgpass, PGPASSFILE, PGPASSWORD).
    """
    import shutil

    command = f"optuna-dashboard {masking.without_secrets(location)}"
    if shutil.which("optuna-dashboard") is None:
        command += f" (not installed: {DASHBOARD_INSTALL}, or pip install -e '.[dashboard]' in a clone)"
    return command
