"""search.rdb_storage: a search that opens a new database while another process writes its schema.

Optuna's `RDBStorage` writes a new database's schema on first open without a
guard against a second process doing the same (optuna/optuna#1092, #4621).
tests/test_search_study.py met it: its reader (optuna-dashboard's way) opened
the new SQLite file at the moment the search did, and the search stopped with
"UNIQUE constraint failed: alembic_version.version_num". Four plain
`RDBStorage`s opening one new SQLite file at once lost that race in 3 of 3
tries (2026-12-07); `SecretFreeRDBStorage` retries it. No Ray here.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
from optuna.storages import RDBStorage

from search.rdb_storage import SecretFreeRDBStorage, StorageError, lost_schema_race


def _first_open_loses_the_race(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first `RDBStorage.__init__` ends as the race's loser does: its schema stamp inserted twice.

    The error is SQLite's own (a second `alembic_version` row, as the other
    process's stamp makes it); the later calls are Optuna's, untouched.
    Returns the log of the calls.
    """
    original = RDBStorage.__init__
    log: list[str] = []

    def opening(self, *args, **kwargs) -> None:
        log.append("open")
        original(self, *args, **kwargs)
        if len(log) == 1:
            with self.engine.begin() as connection:
                connection.execute(sqlalchemy.text("INSERT INTO alembic_version SELECT * FROM alembic_version"))

    monkeypatch.setattr(RDBStorage, "__init__", opening)
    return log


def test_a_search_that_loses_the_race_opens_the_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    log = _first_open_loses_the_race(monkeypatch)
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="UNIQUE constraint failed: alembic_version") as raised:
        RDBStorage(url)  # Optuna's own storage: the error the search met
    assert lost_schema_race(raised.value)

    log.clear()
    storage = SecretFreeRDBStorage(url)
    try:
        assert log == ["open", "open"]  # lost once, then the retry found the schema
        study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "maximize"])
        study.add_trial(optuna.trial.create_trial(values=[0.5, 0.25]))
        assert [t.values for t in optuna.load_study(study_name="s", storage=url).trials] == [[0.5, 0.25]]
    finally:
        storage.engine.dispose()


def test_other_errors_are_refused_at_once() -> None:
    assert not lost_schema_race(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("unable to open database")))
    assert lost_schema_race(sqlalchemy.exc.OperationalError("CREATE", {}, Exception("table trials already exists")))
    with pytest.raises(StorageError, match="cannot open it"):
        SecretFreeRDBStorage("sqlite:////nonexistent-folder/studies.db")


def _open(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        SecretFreeRDBStorage(url).engine.dispose()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 -- reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_four_processes_open_one_new_database_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(url, barrier, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [results.get(timeout=5) for _ in procs] == ["ok"] * 4
