"""What a run prints: one line per trial event while it runs, and the summary tables at the end.

`ProgressPrinter` (a Tune callback, driver side) prints where each trial
attempt runs, each epoch's loss and selection metric, stops, retries and
failures, prefixed by the stage (`[search]`, `[final]`). `print_summary`
prints the search leaderboard with its failures and the Pareto front, and
the final stage's mean [95 % CI] over seeds beside the paper's Table 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from ray.tune import Callback

from sed.config import PAPER_TABLE1

from . import leaderboard as lb
from .failures import trial_error_text
from .rows import control_comparison
from .space import Space


# ----------------------------------------------------------------------------- progress
class ProgressPrinter(Callback):
    """One line per trial epoch, start, stop and error (driver side)."""

    def __init__(self, stage: str, metric: str, keys: Sequence[str], epochs: int, max_failures: int = 0):
        self.stage = stage
        self.metric = metric
        self.keys = list(keys)
        self.epochs = epochs
        self.max_failures = max_failures
        self._workers: dict[str, tuple[Any, Any]] = {}

    def _describe(self, trial: Any) -> str:
        config = trial.config
        parts = []
        if config.get("_label"):
            parts.append(str(config["_label"]))
        for key in self.keys:
            if key in config:
                value = config[key]
                parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
        if "_evaluate" in config:
            parts.append(f"config #{config.get('_rank')} ({config.get('_config_id')}) seed={config.get('seed')}")
        return " ".join(parts)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"[{self.stage}] {trial.trial_id} start: {self._describe(trial)}", flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        worker = (result.get("hostname"), result.get("pid"))
        if worker[1] is not None and self._workers.get(trial.trial_id) != worker:
            # once per attempt: where the trial runs (to find a stuck or dead worker)
            self._workers[trial.trial_id] = worker
            print(f"[{self.stage}] {trial.trial_id} runs on {worker[0]} pid {worker[1]}", flush=True)
        value = result.get(self.metric)
        shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
        extra = ""
        if "eval_macro_f1" in result:
            extra = f" | eval_macro_f1 {result['eval_macro_f1']:.4f} eval_psds {result.get('eval_psds', float('nan')):.4f}"
        print(
            f"[{self.stage}] {trial.trial_id} epoch {result.get('epoch', '?')}/{self.epochs} "
            f"loss {result.get('loss_total', float('nan')):.4f} {self.metric} {shown} "
            f"({result.get('epoch_seconds', float('nan')):.1f}s){extra}",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        epochs = last.get("epoch", 0)
        how = "done" if epochs >= self.epochs else f"stopped by the scheduler after {epochs} epochs"
        print(f"[{self.stage}] {trial.trial_id} {how}", flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tries = f" (after {trial.num_failures - 1} retries)" if trial.num_failures > 1 else ""
        print(f"[{self.stage}] {trial.trial_id} FAILED{tries}: {trial_error_text(trial) or 'see error.txt'}",
              flush=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = (trial.last_result or {}).get("epoch", 0)
        print(
            f"[{self.stage}] {trial.trial_id} failed ({trial_error_text(trial) or 'see error.txt'}); "
            f"retry {trial.num_failures}/{self.max_failures} from its last checkpoint (epoch {epoch})",
            flush=True,
        )


# ----------------------------------------------------------------------------- summary
def print_summary(space: Space, search: pd.DataFrame, summary: pd.DataFrame | None, exp_dir: Path) -> None:
    """The search leaderboard (first 15 rows), failures, retries, Pareto front, and the final stage."""
    counts = search["status"].value_counts().to_dict() if not search.empty else {}
    print()
    print(f"== search {space.name}: {len(search)} trials "
          + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())) + " ==")
    columns = ["trial_id", "status", "label", *space.params.keys(), "val_macro_f1", "val_psds",
               "epochs_run", "wall_seconds"]
    if "pareto" in search:
        columns.append("pareto")
    print(format_table(search, columns, max_rows=15))
    errors = search[search["status"] == "ERROR"] if not search.empty else search
    for row in errors.itertuples(index=False):
        print(f"  {row.trial_id} failed: {row.error}")
    if "failures" in search:
        retried = search[(search["status"] != "ERROR") & (search["failures"] > 0)]
        for row in retried.itertuples(index=False):
            print(f"  {row.trial_id} {row.status.lower()} after {row.failures} failed attempt(s), "
                  "each resumed from its last checkpoint")
    if "pareto" in search and search["pareto"].any():
        print("Pareto front over " + " / ".join(space.metrics) + ": "
              + ", ".join(search.loc[search["pareto"], "trial_id"]))
    if summary is not None and not summary.empty:
        print()
        print(f"== final stage: public evaluation set, mean [95 % CI] over seeds ==")
        if any(label in PAPER_TABLE1 for label in summary["label"].dropna()):
            print(budget_line(space))
        rows = []
        for row in summary.itertuples(index=False):
            is_control = bool(getattr(row, "control", False))
            item = {"rank": "-" if is_control else row.rank, "config": row.label or row.config_id, "seeds": row.n_seeds}
            for metric in ("eval_macro_f1", "eval_psds", "eval_psds1", "eval_psds2"):
                if not hasattr(row, f"{metric}_mean"):
                    continue  # a final stage written before these columns existed
                mean = getattr(row, f"{metric}_mean", float("nan"))
                low = getattr(row, f"{metric}_ci95_low", float("nan"))
                high = getattr(row, f"{metric}_ci95_high", float("nan"))
                item[metric] = f"{mean:.4f} [{low:.4f}, {high:.4f}]" if pd.notna(low) else f"{mean:.4f}"
            if row.label in PAPER_TABLE1:
                item["paper macro/psds"] = "{:.3f}/{:.3f}".format(*PAPER_TABLE1[row.label])
            rows.append(item)
        frame = pd.DataFrame(rows)
        print(format_table(frame, list(frame.columns)))
        for metric in ("eval_macro_f1", "eval_psds"):
            comparison = control_comparison(summary, metric)
            if comparison is not None:
                print("  " + comparison.sentence())
    print()
    print(f"leaderboards: {exp_dir / lb.SEARCH_FILE}"
          + (f", {exp_dir / lb.FINAL_FILE}, {exp_dir / lb.FINAL_SUMMARY_FILE}" if summary is not None else ""))
    print(f"TensorBoard:  tensorboard --logdir {exp_dir}")


def budget_line(space: Space) -> str:
    """The training budget behind the numbers set beside the paper's Table 1."""
    base = space.base_config()
    final_epochs = space.final.epochs if space.final is not None else space.scheduler.max_epochs
    paper = final_epochs == 200 and base.rampup_epochs == 50
    return (
        f"budget: {final_epochs} epochs per final run, lr/consistency ramp-up over {base.rampup_epochs:g} "
        f"epochs ({'the paper protocol: 200 epochs, 50-epoch ramp-up' if paper else 'NOT the paper protocol of 200 epochs with a 50-epoch ramp-up'}); "
        "paper columns: its Table 1"
    )


def format_table(frame: pd.DataFrame, columns: Sequence[str], max_rows: int | None = None, title: str = "") -> str:
    """A plain fixed-width text table of `columns` (missing ones skipped)."""
    columns = [c for c in columns if c in frame.columns]
    if max_rows is not None:
        frame = frame.head(max_rows)

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, (float, np.floating)):
            if math.isnan(value):
                return "-"
            if value != 0 and abs(value) < 1e-3:
                return f"{value:.2e}"
            return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    cells = [[fmt(v) for v in row] for row in frame[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells)
    return "\n".join(lines)
