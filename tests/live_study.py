"""Read an Optuna study in a database while a search writes it, as optuna-dashboard does (tests' helper).

`LiveStudy(url)` keeps one `optuna.storages.RDBStorage` for its URL: a storage per
read would open a connection pool per read (a slow resume once exhausted a
PostgreSQL server's connection slots). `load(name)` is None until the schema and
the study exist; `close()` disposes of the engine. Used by
tests/test_search_study.py (SQLite) and tests/test_search_storage_db.py (PostgreSQL).
"""

from __future__ import annotations

import optuna


class LiveStudy:
    def __init__(self, url: str) -> None:
        self.url = url
        self._storage: optuna.storages.RDBStorage | None = None

    def load(self, name: str) -> optuna.Study | None:
        if self._storage is None:
            try:
                self._storage = optuna.storages.RDBStorage(self.url)
            except Exception:  # noqa: BLE001 -- e.g. the schema not written yet
                return None
        try:
            return optuna.load_study(study_name=name, storage=self._storage)
        except KeyError:  # not created yet
            return None

    def close(self) -> None:
        if self._storage is not None:
            self._storage.engine.dispose()
            self._storage = None
