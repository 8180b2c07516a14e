"""Leaderboard rows: what each column of the three leaderboards holds, and how a trial becomes a row.

The files live in the experiment folder `OUT/NAME/` (written by
`search.leaderboard`, atomically, with the run's metadata):

- `search.parquet`, one row per search trial (`search_frame`, sorted by
  `selection_value`, trials without one last):
  `trial_id`; `status` -- COMPLETED (ran all epochs), EARLY_STOPPED
  (stopped by ASHA), ERROR (failed: `error` says why), and, only in a file
  written when a run was stopped, INTERRUPTED (it had run some epochs) or
  NOT_STARTED; `error` (`Type: message`, `search.failures`); `failures`
  (failed attempts: each retry allowed by the space's `max_failures`
  resumes the trial from its last epoch's checkpoint, so a COMPLETED trial
  may have `failures` > 0); `label` (grid point name, or the group's); `group`
  (only in a space with `groups:`: the group whose search ran the trial); `config_id`; one
  column per hyperparameter of the trial config (every searched parameter,
  empty where its `when` condition did not hold, and every fixed value;
  lists such as `cnn_filters` as comma text); `val_macro_f1` / `val_psds` /
  `val_psds1` / `val_frame_ap` (each the best value over the trial's epochs, NaN when not computed); `selection_value` (best
  of the space's first metric: what the final stage's top-k uses) and
  `best_epoch` (its epoch); `epochs_run`; `wall_seconds`; the compute
  (`search.trial_compute`): `energy_kwh`, `energy_source` (measured or
  estimated, and how), `macs_per_10s`, `train_steps` (optimisation steps
  run); `train_gflop` (the training FLOPs of those steps,
  `sed.training.cost`: per-stage forward FLOPs from torch.utils.flop_counter x
  the passes each step makes, 3x for a pass with gradients); `node_id` and
  `gpu_ids` (the Ray node and the GPU ids the trial's worker was given,
  comma text, empty on the CPU) and `started_at` / `ended_at` (Unix times
  of its start and last report; all four of the last attempt,
  `search.placement`); `trial_dir`;
  `config_json` (the exact trial config); `command` (the `python -m
  sed.train ...` line that retrains it on the same data,
  `search.reproduce`); and `pareto` when the space
  selects on two metrics (not dominated on both).
- `final.parquet`, one row per (config, seed) of the final stage
  (`final_row`, added as each trial ends, `upsert_final_row`):
  `config_id`, `label` (grid point or group, else `search.final.describe`: "mixup at latent"),
  `rank` (of the config in the search),
  `search_trial_id`, `control` (True for the rows of the space's
  `final.control`, config_id "control"), `seed`, `trial_id`, `status` (COMPLETED or ERROR),
  `error`, `failures`, `epochs_run`, `wall_seconds`, the compute columns
  and `train_gflop` (as in search.parquet), `val_macro_f1` /
  `val_psds` / `val_psds1` / `val_frame_ap` and `model_epoch` of the model selected on the
  trial's `selection_metric` (the space's first metric), its
  public-evaluation scores `eval_macro_f1`, `eval_micro_f1`, `eval_psds`,
  `eval_psds_ct`, `eval_psds_macro` (psds_eval, DCASE 2020 settings, 50
  operating points), `eval_psds1`, `eval_psds2` (threshold-free,
  sed_scores_eval, DCASE 2021+ settings) and `eval_intersection_f1`
  (sed_scores_eval, dtc = gtc = 0.5 at the decision threshold),
  `eval_per_class_f1` (JSON), `metric_versions` (JSON), the
  hyperparameter columns, `node_id`, `gpu_ids`, `started_at`, `ended_at`
  (as in search.parquet), `trial_dir` and `command` (the sed.train line of
  that config and seed).
- `final_summary.parquet`, one row per final config in search-rank order
  (`summarize_final`; the control last): `config_id`, `label`, `rank`, `search_trial_id`,
  `control`, `n_seeds` and `seeds` (the COMPLETED ones), and for each metric of
  `FINAL_METRICS`: `<metric>_mean`, `<metric>_std` (sample std, ddof 1),
  `<metric>_ci95_low` / `<metric>_ci95_high` (mean -/+ t(0.975, n-1) *
  std / sqrt(n), Student t, clipped to [0, 1], the range of every one of
  these scores; NaN for n < 2); the cost means `train_steps_mean`,
  `wall_seconds_mean`, `train_gflop_mean` (per seed). Failed seeds are left out. With the
  post-processing stage (`search.postprocess`) also the `*_tuned` scores
  and the `pp_*` values per final row, and the tuned scores' CIs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed.eval.scores import VALIDATION_SCORE_NAMES, best_index

from . import leaderboard as lb
from . import trial_spec
from .placement import placement_columns
from .space import Space, config_id
from .trainable import EVAL_FILE
from .trial_compute import COMPUTE_COLUMNS, compute_columns

#: Metrics aggregated over seeds in final_summary.parquet.
FINAL_METRICS: tuple[str, ...] = (
    "eval_macro_f1",
    "eval_psds",
    "eval_psds_ct",
    "eval_psds_macro",
    "eval_psds1",
    "eval_psds2",
    "eval_intersection_f1",
    *VALIDATION_SCORE_NAMES,
    # after the per-class post-processing tuned on validation (search.postprocess), when it ran
    "eval_macro_f1_tuned",
    "eval_psds1_tuned",
    "eval_psds2_tuned",
)
#: Training-cost columns of a final.parquet row, averaged per seed in final_summary.parquet.
COST_COLUMNS: tuple[str, ...] = ("train_steps", "wall_seconds", "train_gflop")
#: Public-evaluation scores of a final.parquet row.
EVAL_METRICS: tuple[str, ...] = (
    "eval_macro_f1",
    "eval_micro_f1",
    "eval_psds",
    "eval_psds_ct",
    "eval_psds_macro",
    "eval_psds1",
    "eval_psds2",
    "eval_intersection_f1",
)


# ----------------------------------------------------------------------------- search rows
@dataclass
class TrialRecord:
    """What a search row is made of: one Tune trial as it ended (`search.tuner`'s `records` of a finished fit)."""

    trial_id: str
    ray_status: str
    config: dict[str, Any]
    history: pd.DataFrame
    error: str | None
    path: str
    failures: int = 0  # failed attempts (Ray's num_failures): retries used, +1 if it ended in ERROR


def leaderboard_status(ray_status: str, epochs_run: int, epochs: int) -> str:
    """The `status` column from Ray's status and the epochs the trial ran of `epochs`."""
    if ray_status == "ERROR":
        return "ERROR"
    if ray_status == "TERMINATED":
        return "COMPLETED" if epochs_run >= epochs else "EARLY_STOPPED"
    if epochs_run == 0:
        return "NOT_STARTED"
    return "INTERRUPTED"


def best_of(history: pd.DataFrame, metric: str, mode: str) -> tuple[float, int | None]:
    """(best value over epochs, its epoch) of `metric` in a trial's history (NaN, None if absent)."""
    if history is None or history.empty or metric not in history:
        return math.nan, None
    values = pd.to_numeric(history[metric], errors="coerce").reset_index(drop=True)
    index = best_index(values.tolist(), mode)  # the trainer's rule: a NaN never wins, ties keep the earlier
    if index is None:
        return math.nan, None
    epoch_col = "epoch" if "epoch" in history else "training_iteration"
    epoch = history[epoch_col].iloc[index]
    return float(values.iloc[index]), (int(epoch) if pd.notna(epoch) else None)


def epochs_run(history: pd.DataFrame) -> int:
    """The last epoch a trial's history reports (0 for none)."""
    if history is None or history.empty:
        return 0
    column = "epoch" if "epoch" in history else "training_iteration"
    values = pd.to_numeric(history[column], errors="coerce")
    return int(values.max()) if values.notna().any() else 0


def wall_seconds(history: pd.DataFrame) -> float:
    """Tune's total training time of a trial (`time_total_s`)."""
    if history is None or history.empty or "time_total_s" not in history:
        return math.nan
    return float(pd.to_numeric(history["time_total_s"], errors="coerce").max())


def last_value(history: pd.DataFrame, column: str) -> float:
    """The largest value of a cumulative column (`step`, `train_gflop`) in a trial's history (NaN if absent)."""
    if history is None or history.empty or column not in history:
        return math.nan
    values = pd.to_numeric(history[column], errors="coerce")
    return float(values.max()) if values.notna().any() else math.nan


def hyperparameter_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    """Trial config -> one column per hyperparameter (lists as comma strings, meta keys dropped)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if trial_spec.is_meta(key):
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[key] = value
    return out


def search_frame(records: Sequence[TrialRecord], space: Space) -> pd.DataFrame:
    """search.parquet rows (columns: the module docstring)."""
    rows = []
    epochs = space.scheduler.max_epochs
    for record in records:
        history = record.history
        run = epochs_run(history)
        row: dict[str, Any] = {
            "trial_id": record.trial_id,
            "status": leaderboard_status(record.ray_status, run, epochs),
            "error": record.error,
            "failures": record.failures,
            "label": record.config.get(trial_spec.LABEL, ""),
            "config_id": config_id(record.config),
        }
        if space.groups or trial_spec.GROUP in space.meta:  # a `groups:` space: the trial's group
            row["group"] = record.config.get(trial_spec.GROUP, "")
        # every searched parameter has its column, also when a condition left it unsampled
        row.update({name: None for name in space.params})
        row.update(hyperparameter_columns(record.config))
        for metric in VALIDATION_SCORE_NAMES:
            mode = space.mode if metric in space.metrics else "max"
            row[metric], _ = best_of(history, metric, mode)
        row["selection_value"], row["best_epoch"] = best_of(history, space.metric, space.mode)
        row["epochs_run"] = run
        row["wall_seconds"] = wall_seconds(history)
        row.update(compute_columns(history))
        row.update(placement_columns(history))
        row["train_gflop"] = last_value(history, "train_gflop")
        row["trial_dir"] = record.path
        row["config_json"] = json.dumps(record.config, sort_keys=True, default=str)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if len(space.metrics) > 1:
        frame["pareto"] = pareto_front(frame, list(space.metrics), space.mode)
    return sort_leaderboard(frame, space)


def sort_leaderboard(frame: pd.DataFrame, space: Space) -> pd.DataFrame:
    """search.parquet's order: by `selection_value` (the space's mode), trials without one last."""
    ascending = space.mode == "min"
    frame = frame.assign(_missing=frame["selection_value"].isna())
    frame = frame.sort_values(["_missing", "selection_value"], ascending=[True, ascending], kind="stable")
    return frame.drop(columns="_missing").reset_index(drop=True)


# ----------------------------------------------------------------------------- final rows
def _float(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def final_row(
    config: Mapping[str, Any],
    last_result: Mapping[str, Any] | None,
    status: str,
    error: str | None,
    trial_id: str,
    trial_dir: str | Path | None,
    param_names: Sequence[str] = (),
    failures: int = 0,
) -> dict[str, Any]:
    """One final.parquet row from a finished final-stage trial (`param_names`: columns always present)."""
    result = dict(last_result or {})
    row: dict[str, Any] = {
        "config_id": config.get(trial_spec.CONFIG_ID),
        "label": config.get(trial_spec.LABEL, ""),
        "rank": config.get(trial_spec.RANK),
        "search_trial_id": config.get(trial_spec.SEARCH_TRIAL_ID),
        "seed": int(config["seed"]),
        "trial_id": trial_id,
        "status": status,
        "error": error,
        "failures": int(failures),
        "epochs_run": int(result.get("epoch", 0) or 0),
        "wall_seconds": float(result.get("time_total_s", math.nan) or math.nan),
        # the FLOPs of the training steps (sed.training.cost); train_steps is a compute column below
        "train_gflop": _float(result.get("train_gflop")),
        # validation scores of the selected (best-F1) model, i.e. of the model scored on eval
        "val_macro_f1": _float(result.get("selected_val_macro_f1", result.get("best_val_macro_f1"))),
        **{key: _float(result.get(f"selected_{key}")) for key in VALIDATION_SCORE_NAMES[1:]},
        "model_epoch": result.get("model_epoch"),
        "control": bool(config.get(trial_spec.CONTROL, False)),
    }
    row.update(compute_columns(pd.DataFrame([{k: result.get(k) for k in COMPUTE_COLUMNS}]) if result else None))
    for metric in EVAL_METRICS:
        value = result.get(metric)
        row[metric] = _float(value)
    per_class = result.get("eval_per_class_f1_json")
    if result.get("metric_versions_json"):
        row["metric_versions"] = result["metric_versions_json"]
    elif trial_dir is not None and (Path(trial_dir) / EVAL_FILE).is_file():
        try:
            record = json.loads((Path(trial_dir) / EVAL_FILE).read_text())
            per_class = json.dumps(record.get("eval_per_class_f1"))
            row["metric_versions"] = json.dumps(record.get("metric_versions"), sort_keys=True)
        except (OSError, ValueError):
            pass
    row["eval_per_class_f1"] = per_class
    # a config key that is also a score column (the `val_psds` switch of TrainConfig vs the
    # validation PSDS) keeps the score: the row is about the trial's results
    scores = set(row)
    row.update({name: None for name in param_names if name not in scores})
    row.update({k: v for k, v in hyperparameter_columns(config).items() if k not in scores})
    row.update(placement_columns(None, result))
    row["trial_dir"] = str(trial_dir) if trial_dir is not None else None
    return row


def upsert_final_row(final_path: Path, row: Mapping[str, Any], metadata: Mapping[str, str]) -> pd.DataFrame:
    """Add (or replace) the row of `row`'s (config_id, seed) in final.parquet, atomically."""
    frame = lb.read_parquet(final_path) if final_path.is_file() else pd.DataFrame()
    if not frame.empty:
        keep = ~(
            (frame["config_id"].astype(str) == str(row["config_id"])) & (frame["seed"].astype(int) == int(row["seed"]))
        )
        frame = frame[keep]
    # rows as records, not pd.concat: a column all-NA on one side (a parameter its `when` left
    # unsampled, `error` of completed trials) made pandas 2.x warn (FutureWarning) on every row
    frame = pd.DataFrame([*frame.to_dict("records"), dict(row)])
    frame = frame.sort_values(["rank", "seed"], kind="stable").reset_index(drop=True)
    lb.write_parquet_atomic(frame, final_path, metadata)
    return frame


# ----------------------------------------------------------------------------- summary rows
def pareto_front(frame: pd.DataFrame, metrics: Sequence[str], mode: str = "max") -> pd.Series:
    """Boolean mask of rows not dominated on `metrics` (all maximised, or all minimised)."""
    values = frame[list(metrics)].astype(float).to_numpy()
    if mode == "min":
        values = -values
    valid = np.isfinite(values).all(axis=1)
    mask = np.zeros(len(frame), dtype=bool)
    for i in range(len(frame)):
        if not valid[i]:
            continue
        others = values[valid]
        dominated = np.any(np.all(others >= values[i], axis=1) & np.any(others > values[i], axis=1))
        mask[i] = not dominated
    return pd.Series(mask, index=frame.index)
