"""An Optuna `RDBStorage` whose pickled state holds no password.

Ray pickles the searcher -- and with it the study's storage -- into the
experiment folder (`tuner.pkl`, `searcher-state-*.pkl`), and Optuna's
`RDBStorage` pickles its URL, password included. `SecretFreeRDBStorage`
connects with the URL it was given but pickles only its masked form
(`postgresql://alice:***@host/db`, `search.masking`). Unpickled -- by
`--resume`, in the driver -- it connects with what this process was given
at run time for that masked URL (`masking.reveal`: the URL of `--storage` or
of the space), else with the URL without its password, with which the
database library finds the password itself (PostgreSQL: `PGPASSWORD`,
`PGPASSFILE`, `~/.pgpass`). So `--resume` needs no secret written anywhere.

An error while connecting is re-raised as `StorageError` with the URL and
every secret of this process masked (`masking.mask_text`).

A new database's schema is written by the first `RDBStorage` that opens it,
and Optuna does not guard that against a second process doing the same at
the same moment (optuna/optuna#1092, #4621): both see no `alembic_version`
row, both insert one, and the second fails with a unique-constraint (or
"table already exists") error. That happens to a search started while
optuna-dashboard (or another search) first opens the same new database. Such
an error is retried a few times (`SCHEMA_RACE_TRIES`): by then the other
process has written the schema and the next try finds it. Any other error is
refused at once.
"""

from __future__ import annotations

import time
from typing import Any

from optuna.storages import RDBStorage

from sed.errors import UserError

from . import masking

#: Tries of `RDBStorage.__init__` when it loses a race to write a new database's schema (module docstring).
SCHEMA_RACE_TRIES = 5


class StorageError(UserError):
    """The study's storage cannot be used; the message names it and the fix."""


def connect_hint(masked: str) -> str:
    """Where the password comes from, for messages about `masked`."""
    if masked.startswith(("postgresql", "postgres")):
        return (
            "the password is never stored with the experiment: give the URL with it again (--storage), or keep "
            "it where PostgreSQL's library reads it (~/.pgpass, PGPASSFILE or PGPASSWORD)"
        )
    return "the password is never stored with the experiment: give the URL with it again (--storage)"


class SecretFreeRDBStorage(RDBStorage):
    """`RDBStorage` that pickles its URL masked and finds the secret again when unpickled (module docstring)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        masked = masking.remember(url)
        self.masked_url = masked
        for attempt in range(1, SCHEMA_RACE_TRIES + 1):
            try:
                super().__init__(masking.reveal(masked), **kwargs)
                return
            except Exception as exc:  # bad URL, missing driver, unreachable server, wrong password
                if attempt < SCHEMA_RACE_TRIES and lost_schema_race(exc):
                    engine = getattr(self, "engine", None)
                    if engine is not None:
                        engine.dispose()  # this try's connection pool; the next try makes its own
                    time.sleep(0.2 * attempt)  # the other process is finishing the schema
                    continue
                raise StorageError(_refusal(masked, exc)) from None

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = self.masked_url
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state)
        state["url"] = masking.reveal(state["url"])
        try:
            super().__setstate__(state)
        except Exception as exc:
            raise StorageError(_refusal(state["masked_url"], exc)) from None


def lost_schema_race(exc: BaseException) -> bool:
    """Is `exc` another process writing the same new database's schema at the same moment?"""
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True  # the same alembic_version / version_info row inserted twice
    text = str(exc).lower()
    return isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.ProgrammingError) and (
        "already exists" in text or "duplicate key" in text
    )


def _refusal(masked: str, exc: BaseException) -> str:
    detail = masking.mask_text(f"{type(exc).__name__}: {exc}")
    return (
        f"storage {masked}: cannot open it ({detail}); give a reachable database URL (sqlite:///PATH needs "
        f"nothing else) or a journal file path; {connect_hint(masked)}"
    )
