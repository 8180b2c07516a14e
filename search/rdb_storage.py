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
"""

from __future__ import annotations

from typing import Any

from optuna.storages import RDBStorage

from sed.errors import UserError

from . import masking


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
        try:
            super().__init__(masking.reveal(masked), **kwargs)
        except Exception as exc:  # bad URL, missing driver, unreachable server, wrong password
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


def _refusal(masked: str, exc: BaseException) -> str:
    detail = masking.mask_text(f"{type(exc).__name__}: {exc}")
    return (
        f"storage {masked}: cannot open it ({detail}); give a reachable database URL (sqlite:///PATH needs "
        f"nothing else) or a journal file path; {connect_hint(masked)}"
    )
