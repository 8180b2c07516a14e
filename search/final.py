"""Final stage: retrain the top-k configs with several seeds, score on the public eval set.

docs/design.md ("Run"): the search selects on validation (the held-out 20 % of the
synthetic strong set), as the paper did ("Hyperparameters have been
selected using the validation score computed on a split of D_s", section 5).
The final stage then

1. takes the `final.top_k` search trials with the best selection value (the
   best value of the space's first metric over each trial's epochs; ERROR and
   NOT_STARTED trials are excluded; ties keep search order) -- or, with
   `final.per_group`, the `top_k` best of each group (each combination of the
   values of those keys, e.g. augmentation x locations), so every method is
   retrained at its best, not only the overall winners,
2. retrains each of those configs from scratch once per seed in
   `final.seeds` for `final.epochs` epochs -- through Ray, with the same
   trainable, as a fixed list of configs (no searcher, FIFO scheduler),
3. scores the model selected on the space's first metric (the trial's
   `selection_metric`; validation F1 by default) on the public evaluation set
   (`Trainer.evaluate('public_eval')`: event macro F1 and PSDS at 50
   operating points, DCASE 2020 settings, and the threshold-free PSDS1,
   PSDS2 and intersection F1 of sed_scores_eval), and writes the DCASE-format
   outputs of that model (detections, score folders, durations,
   `best_model.pt`) under the trial folder's `outputs/`.
   With `final.control` in the space, a control config (the space's fixed
   values with the supervised-only objective for `control: none`) runs with
   the same seeds and epochs beside them (`config_id` "control",
   `control` True), so the summary can say whether the best configuration
   beats training without augmentation (`summary.control_comparison`).
4. appends one row per (config, seed) to `final.parquet` as each trial ends
   (atomic rewrite, `FinalRecorder`), and writes the per-config mean / std /
   95 % CI to `final_summary.parquet` (the rows: `search.rows`).

Resuming: (config_id, seed) pairs already in `final.parquet` (completed or
errored) are not rerun. The Ray experiments of this stage live in
`OUT/NAME/final`, `OUT/NAME/final-2`, ...; an interrupted one whose pairs are
all still wanted is restored (its running trials continue from their last
checkpoint), otherwise a new one runs only the missing pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Callback

from sed.config import TrainConfig
from sed.io import write_json

from . import leaderboard as lb
from . import trial_spec
from .failures import trial_error_text
from .rows import final_row, upsert_final_row
from .space import CONTROL_ID, Space
from .summary import summarize_final

FINAL_STATE_FILE = "final_state.json"


def select_top(search: pd.DataFrame, space: Space) -> pd.DataFrame:
    """The `final.top_k` best trials of `search.parquet` by `selection_value`."""
    assert space.final is not None
    usable = search[
        search["status"].isin(["COMPLETED", "EARLY_STOPPED", "INTERRUPTED"])
        & pd.to_numeric(search["selection_value"], errors="coerce").notna()
    ].copy()
    usable["_order"] = range(len(usable))
    ascending = space.mode == "min"
    usable = usable.sort_values(["selection_value", "_order"], ascending=[ascending, True], kind="stable")
    # one entry per distinct config (two trials may sample the same grid point/config)
    usable = usable.drop_duplicates(subset="config_id", keep="first")
    if space.final.per_group:
        # the top_k of each group, groups in the order of their best trial
        keys = [k for k in space.final.per_group if k in usable]
        group = usable[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", index=usable.index)
        usable = usable.assign(_group=group)
        usable = usable.groupby("_group", sort=False).head(space.final.top_k).drop(columns="_group")
        return usable.drop(columns="_order").reset_index(drop=True)
    return usable.head(space.final.top_k).drop(columns="_order").reset_index(drop=True)


def describe(values: Mapping[str, Any]) -> str:
    """A config in words: its augmentation and where it is injected ("mixup at latent"), or "no
    augmentation"; TrainConfig's defaults where `values` leaves a key out."""
    defaults = TrainConfig()
    augmentation = str(values.get("augmentation", defaults.augmentation))
    if augmentation == "none":
        return "no augmentation"
    return f"{augmentation} at {values.get('locations', defaults.locations)}"


def final_points(top: pd.DataFrame, space: Space) -> list[dict[str, Any]]:
    """Trial configs of the final stage: each top config x each seed, epochs = final.epochs."""
    assert space.final is not None
    points = []
    for rank, row in enumerate(top.itertuples(index=False), start=1):
        base = json.loads(row.config_json)
        base = trial_spec.overrides_of(base)
        label = getattr(row, "label", "") or ""
        if not label and space.final.per_group:  # the group it stands for
            label = " ".join(f"{key}={getattr(row, key, None)}" for key in space.final.per_group)
        if not label:  # a sampled config: what it does, so tables and sentences read without a lookup
            label = describe({**space.constants(), **base})
        for seed in space.final.seeds:
            points.append(
                {
                    **base,
                    "seed": int(seed),
                    "epochs": int(space.final.epochs),
                    trial_spec.CONFIG_ID: row.config_id,
                    trial_spec.LABEL: label,
                    trial_spec.RANK: rank,
                    trial_spec.SEARCH_TRIAL_ID: row.trial_id,
                    trial_spec.EVALUATE: True,
                }
            )
    if space.final.control is not None:
        control = {**space.constants(), **space.final.control}
        for seed in space.final.seeds:
            points.append(
                {
                    **control,
                    "seed": int(seed),
                    "epochs": int(space.final.epochs),
                    trial_spec.CONFIG_ID: CONTROL_ID,
                    trial_spec.LABEL: space.final.control_label,
                    trial_spec.RANK: len(top) + 1,
                    trial_spec.SEARCH_TRIAL_ID: "",
                    trial_spec.CONTROL: True,
                    trial_spec.EVALUATE: True,
                }
            )
    return points


def pair_of(config: Mapping[str, Any]) -> tuple[str, int]:
    return str(config[trial_spec.CONFIG_ID]), int(config["seed"])


def done_pairs(final_path: Path) -> set[tuple[str, int]]:
    if not final_path.is_file():
        return set()
    frame = lb.read_parquet(final_path)
    return {(str(c), int(s)) for c, s in zip(frame["config_id"], frame["seed"])}


class FinalRecorder(Callback):
    """Tune callback (driver side): one final.parquet row per finished final-stage trial."""

    def __init__(
        self,
        final_path: str,
        metadata: Mapping[str, str],
        param_names: Sequence[str] = (),
        command: Callable[[Mapping[str, Any]], str] | None = None,
    ):
        self.final_path = str(final_path)
        self.metadata = dict(metadata)
        self.param_names = list(param_names)
        #: makes the row's `command` (search.reproduce.TrainCommand)
        self.command = command

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"command": None, **state})  # a recorder pickled by an older version

    def _record(self, trial: Any, status: str) -> None:
        error = trial_error_text(trial) if status == "ERROR" else None
        row = final_row(
            trial.config,
            trial.last_result,
            status,
            error,
            trial.trial_id,
            trial.path,
            self.param_names,
            failures=getattr(trial, "num_failures", 0),
        )
        if self.command is not None:
            row["command"] = self.command(trial.config)
        upsert_final_row(Path(self.final_path), row, self.metadata)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, "COMPLETED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, "ERROR")


def load_state(exp_dir: Path) -> dict[str, Any]:
    path = exp_dir / FINAL_STATE_FILE
    if path.is_file():
        return json.loads(path.read_text())
    return {"experiments": []}


def save_state(exp_dir: Path, state: Mapping[str, Any]) -> None:
    write_json(exp_dir / FINAL_STATE_FILE, state, indent=1)


def plan_experiment(
    exp_dir: Path, pairs_wanted: set[tuple[str, int]], can_restore: Callable[[Path], bool]
) -> tuple[str, bool]:
    """(experiment name, restore?) for the pairs still to run."""
    state = load_state(exp_dir)
    experiments = state.get("experiments", [])
    if experiments:
        last = experiments[-1]
        last_pairs = {(str(c), int(s)) for c, s in last["pairs"]}
        if pairs_wanted <= last_pairs and can_restore(exp_dir / last["name"]):
            return last["name"], True
    names = {e["name"] for e in experiments}
    name = "final"
    n = 1
    while name in names or (exp_dir / name).exists():
        n += 1
        name = f"final-{n}"
    experiments.append({"name": name, "pairs": sorted([list(p) for p in pairs_wanted])})
    save_state(exp_dir, {**state, "experiments": experiments})
    return name, False


def summary_frame(final: pd.DataFrame, wanted_ids: Sequence[str], control: bool = False) -> pd.DataFrame:
    """final_summary rows of the configs of the current plan (mean/std/CI over seeds), the control last."""
    if final.empty:
        return summarize_final(final)
    wanted = list(wanted_ids) + ([CONTROL_ID] if control else [])
    subset = final[final["config_id"].isin(wanted)]
    return summarize_final(subset)


__all__ = [
    "FinalRecorder",
    "final_points",
    "select_top",
    "summary_frame",
    "done_pairs",
    "plan_experiment",
]
