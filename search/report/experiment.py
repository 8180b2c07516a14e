"""What a report reads: an experiment folder's leaderboards, its space and each search trial's epochs.

`load_experiment(exp_dir)` returns an `ExperimentFolder` holding

- `search`: search.parquet, or -- while the search stage is still running
  (the file is written when the stage ends) -- the same rows rebuilt by
  `search.rows.search_frame` from the trial folders (`params.json`,
  `progress.csv`), with status IN_PROGRESS for a trial that has not run
  every epoch (`live` is then True);
- `final`: final.parquet (it grows as final-stage trials end), empty if none;
- `summary`: the final stage per configuration, mean / std / 95 % CI over
  seeds: final_summary.parquet when it covers every configuration of
  final.parquet, else `search.summary.summarize_final` of final.parquet (the
  function that writes final_summary.parquet), so a partly finished final
  stage is shown too;
- `histories`: per search trial, its per-epoch records (Ray's
  `progress.csv` in the trial folder: one row per reported epoch);
- `space`: the space the run was started with (`sedtune_run.json`, else
  the `sedtune.space` metadata of search.parquet).

Every refusal is a `ReportError` naming the folder or file and the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sed.errors import UserError

from .. import leaderboard as lb
from ..rows import TrialRecord, search_frame
from ..settings import RUN_FILE
from ..space import Space, SpaceError, parse_space
from ..summary import summarize_final

PROGRESS_FILE = "progress.csv"
PARAMS_FILE = "params.json"
IN_PROGRESS = "IN_PROGRESS"


class ReportError(UserError):
    """The experiment folder cannot be reported on; the message names the file and the fix."""


@dataclass
class ExperimentFolder:
    """An experiment folder as the report sees it (module docstring)."""

    exp_dir: Path
    space: Space
    search: pd.DataFrame
    final: pd.DataFrame
    summary: pd.DataFrame
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    live: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    #: where the search's Optuna study lives (sedtune_run.json's `storage`), None if in memory
    storage: str | None = None

    @property
    def control_ids(self) -> set[str]:
        """config_ids of the no-augmentation control rows of final.parquet (its `control` column)."""
        if self.final.empty or "control" not in self.final:
            return set()
        mask = self.final["control"].fillna(False).astype(bool)
        return set(self.final.loc[mask, "config_id"].astype(str))


def _read(path: Path) -> pd.DataFrame:
    try:
        return lb.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReportError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc}); "
            "rerun the stage that writes it (search.run --resume) or remove it"
        ) from None


def _space(exp_dir: Path) -> Space:
    run_file = exp_dir / RUN_FILE
    try:
        if run_file.is_file():
            settings = json.loads(run_file.read_text())
            space = parse_space(settings["space_text"], settings.get("space_path") or str(run_file))
            return space.with_overrides(num_samples=settings.get("num_samples"), max_epochs=settings.get("max_epochs"))
        search_path = exp_dir / lb.SEARCH_FILE
        if search_path.is_file():
            meta = lb.read_metadata(search_path)
            if "space" in meta:
                return parse_space(meta["space"], meta.get("space_path") or str(search_path))
    except (KeyError, ValueError, SpaceError) as exc:
        raise ReportError(
            f"{exp_dir}: the stored space cannot be read ({exc}); is {run_file} from this version of sedtune?"
        ) from None
    raise ReportError(
        f"{exp_dir}: not a sedtune experiment (neither {RUN_FILE} nor {lb.SEARCH_FILE} with its "
        "space metadata); give the folder python -m search.run wrote (OUT/NAME)"
    )


def trial_folder(exp_dir: Path, trial_dir: Any) -> Path | None:
    """The trial's folder: its recorded path, else the folder of that name in `exp_dir` (a moved experiment)."""
    if not isinstance(trial_dir, str) or not trial_dir:
        return None
    path = Path(trial_dir)
    if path.is_dir():
        return path
    moved = exp_dir / path.name
    return moved if moved.is_dir() else None


def read_history(folder: Path | None) -> pd.DataFrame:
    """A trial's per-epoch records (progress.csv), one row per epoch (a retried epoch: its last report)."""
    if folder is None or not (folder / PROGRESS_FILE).is_file():
        return pd.DataFrame()
    try:
        history = pd.read_csv(folder / PROGRESS_FILE)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return pd.DataFrame()
    if "epoch" in history:
        history = history.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)
    return history


def _live_search(exp_dir: Path, space: Space) -> pd.DataFrame:
    """search.parquet's rows rebuilt from the trial folders of a search still running."""
    records = []
    # a `groups:` space keeps each group's trials in its own experiment, search--GROUP/
    for folder in sorted([*exp_dir.glob("trial_*"), *exp_dir.glob("search--*/trial_*")]):
        params = folder / PARAMS_FILE
        if not params.is_file():
            continue
        try:
            config = json.loads(params.read_text())
        except ValueError:
            continue  # being written
        records.append(
            TrialRecord(
                trial_id=folder.name.removeprefix("trial_"),
                ray_status="TERMINATED",
                config=config,
                history=read_history(folder),
                error=None,
                path=str(folder),
            )
        )
    frame = search_frame(records, space)
    if not frame.empty:
        frame.loc[frame["status"] != "COMPLETED", "status"] = IN_PROGRESS
    return frame


def _summary(exp_dir: Path, final: pd.DataFrame) -> pd.DataFrame:
    path = exp_dir / lb.FINAL_SUMMARY_FILE
    if final.empty:
        return pd.DataFrame()
    if path.is_file():
        summary = _read(path)
        if set(final["config_id"].astype(str)) <= set(summary.get("config_id", pd.Series(dtype=str)).astype(str)):
            return summary
    return summarize_final(final)


def load_experiment(exp_dir: Path | str) -> ExperimentFolder:
    """Read everything a report shows from `exp_dir` (module docstring)."""
    exp_dir = Path(exp_dir).expanduser().resolve()
    if not exp_dir.is_dir():
        raise ReportError(f"{exp_dir}: no such folder; give an experiment folder (results/NAME)")
    space = _space(exp_dir)
    search_path = exp_dir / lb.SEARCH_FILE
    live = not search_path.is_file()
    if live:
        search = _live_search(exp_dir, space)
        metadata: dict[str, str] = {}
    else:
        search = _read(search_path)
        metadata = lb.read_metadata(search_path)
        missing = [c for c in ("trial_id", "status", "selection_value") if c not in search]
        if missing and len(search):
            raise ReportError(
                f"{search_path}: no column {', '.join(missing)}; it was not written by "
                "search.run (rerun the search, or --resume it)"
            )
    final_path = exp_dir / lb.FINAL_FILE
    final = _read(final_path) if final_path.is_file() else pd.DataFrame()
    if not final.empty and "config_id" not in final:
        raise ReportError(f"{final_path}: no column config_id; it was not written by search.run")
    histories: dict[str, pd.DataFrame] = {}
    for row in search.itertuples(index=False):
        histories[str(row.trial_id)] = read_history(trial_folder(exp_dir, getattr(row, "trial_dir", None)))
    storage = None
    if (exp_dir / RUN_FILE).is_file():
        try:
            storage = json.loads((exp_dir / RUN_FILE).read_text()).get("storage")
        except ValueError:
            pass
    return ExperimentFolder(
        exp_dir=exp_dir,
        space=space,
        search=search,
        final=final,
        summary=_summary(exp_dir, final),
        histories=histories,
        live=live,
        metadata=metadata,
        storage=storage,
    )


def finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
