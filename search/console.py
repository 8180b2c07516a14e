"""What a run prints: a status line and the trial events while it runs, and the summary tables at the end.

`ProgressPrinter` (a Tune callback, driver side) keeps one compact status
line (trials done / running / stopped / failed, best so far, elapsed, ETA)
and prints where each trial attempt runs, stops, retries and failures,
prefixed by the stage (`[search]`, `[final]`); each epoch's loss and
selection metric go to `OUT/NAME/progress.log` (and to the console with
`--verbose`). `print_summary`
prints the search leaderboard with its failures and the Pareto front, and
the final stage's mean [95 % CI] over seeds beside the paper's Table 1 (with `groups:`,
also each group's best as Table 1: `search.table1`).
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray.tune import Callback

from sed.presets import PAPER_TABLE1

from . import leaderboard as lb
from . import trial_spec
from .failures import trial_error_text
from .postprocess import CI_NOTE, COMPARED_METRICS, SUMMARY_METRICS, TUNED_NOTE
from .space import Space
from .summary import control_comparison, early_epoch_notes, paired_comparison
from .table1 import format_table1
from .trial_compute import compute_line

# ----------------------------------------------------------------------------- progress
#: Seconds between two status lines when the console is not a terminal (a log, a pipe).
STATUS_INTERVAL_S = 30.0
#: Seconds between two refreshes of the status line on a terminal.
TTY_REFRESH_S = 1.0
PROGRESS_LOG = "progress.log"


def format_duration(seconds: float) -> str:
    """`1h02m`, `3m05s`, `42s` ('?' when unknown)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class ProgressPrinter(Callback):
    """A stage's live output (driver side).

    - one compact status line: trials done / running / stopped / failed of
      the total, the best value so far and its trial, elapsed time and an ETA
      from the epochs still to run (an upper bound: ASHA may stop trials
      early) at the epoch rate so far; refreshed in place (`\\r`) on a
      terminal, printed every `STATUS_INTERVAL_S` seconds otherwise;
    - one line per trial event (start, where it runs, done, stopped, retry,
      failure) on the console and in the log;
    - one line per trial epoch in `log_path` (`OUT/NAME/progress.log`), and
      on the console only with `verbose`.

    Nothing unpicklable is kept (a restored Tuner unpickles its callbacks):
    the log is opened per line, the console is `sys.stdout` at call time.
    """

    def __init__(
        self,
        stage: str,
        metric: str,
        keys: Sequence[str],
        epochs: int,
        max_failures: int = 0,
        total: int | None = None,
        log_path: str | Path | None = None,
        verbose: bool = False,
        tune_metric: str | None = None,
    ):
        self.stage = stage
        self.metric = metric
        self.tune_metric = tune_metric or metric
        self.keys = list(keys)
        self.epochs = epochs
        self.max_failures = max_failures
        self.total = total
        self.log_path = str(log_path) if log_path is not None else None
        self.verbose = verbose
        self._workers: dict[str, tuple[Any, Any]] = {}
        self._started: float | None = None
        self._last_status = 0.0
        self._status_shown = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a Tuner restored from the tuner.pkl of an older sedtune version unpickles its printer
        # without the newer attributes: their defaults
        defaults = {
            "tune_metric": state.get("metric"),
            "total": None,
            "log_path": None,
            "verbose": False,
            "_started": None,
            "_last_status": 0.0,
            "_status_shown": False,
        }
        self.__dict__.update({**defaults, **state})

    # -- output
    def _log(self, line: str) -> None:
        if self.log_path is None:
            return
        try:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{_dt.datetime.now().isoformat(timespec='seconds')} {line}\n")
        except OSError:
            pass  # the log is a convenience; the leaderboards are the record

    def _tty(self) -> bool:
        return bool(getattr(sys.stdout, "isatty", lambda: False)())

    def _emit(self, line: str, console: bool = True) -> None:
        self._log(line)
        if not console:
            return
        if self._status_shown and self._tty():
            sys.stdout.write("\r\033[K")  # the event replaces the status line, which is redrawn below
            self._status_shown = False
        print(line, flush=True)

    def status_line(self, trials: Sequence[Any]) -> str:
        """`[search] 12/32 trials: 5 done, 2 running, 4 stopped, 1 failed | best val_macro_f1 0.41 (ab12) | ...`."""
        done = running = stopped = failed = 0
        reported = remaining = 0
        best: tuple[float, str] | None = None
        for trial in trials:
            last = trial.last_result or {}
            epoch = int(last.get("epoch", 0) or 0)
            reported += epoch
            if trial.status == "ERROR":
                failed += 1
            elif trial.status == "TERMINATED":
                if epoch >= self.epochs:
                    done += 1
                else:
                    stopped += 1
            else:
                if trial.status == "RUNNING":
                    running += 1
                remaining += max(self.epochs - epoch, 0)
            value = last.get(self.tune_metric)
            if isinstance(value, (int, float)) and math.isfinite(value) and (best is None or value > best[0]):
                best = (float(value), trial.trial_id)
        total = self.total if self.total is not None else len(trials)
        remaining += max(total - len(trials), 0) * self.epochs
        elapsed = time.monotonic() - self._started if self._started is not None else math.nan
        rate = reported / elapsed if reported and elapsed > 0 else math.nan
        eta = remaining / rate if remaining and math.isfinite(rate) else (0.0 if not remaining else math.nan)
        shown_best = f"best {self.metric} {best[0]:.4f} ({best[1]})" if best else f"best {self.metric} -"
        return (
            f"[{self.stage}] {done + stopped + failed}/{total} trials: {done} done, {running} running, "
            f"{stopped} stopped, {failed} failed | {shown_best} | elapsed {format_duration(elapsed)}, "
            f"ETA <= {format_duration(eta)} ({remaining} epochs left)"
        )

    def _status(self, trials: Sequence[Any], force: bool = False) -> None:
        now = time.monotonic()
        tty = self._tty()
        if not force and now - self._last_status < (TTY_REFRESH_S if tty else STATUS_INTERVAL_S):
            return
        self._last_status = now
        line = self.status_line(trials)
        if tty:
            sys.stdout.write("\r\033[K" + line)
            sys.stdout.flush()
            self._status_shown = True
        else:
            print(line, flush=True)
        self._log(line)

    # -- Tune callback hooks
    def setup(self, *args: Any, **info: Any) -> None:
        self._started = time.monotonic()  # also on a restored Tuner: this session's elapsed time
        self._last_status = self._started  # the first status line after one interval

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._started is None:
            self._started = time.monotonic()
        self._status(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._status(trials, force=True)
        if self._tty():
            print(flush=True)
            self._status_shown = False

    def _describe(self, trial: Any) -> str:
        config = trial.config
        parts = []
        if config.get(trial_spec.LABEL):
            parts.append(str(config[trial_spec.LABEL]))
        for key in self.keys:
            if key in config:
                value = config[key]
                parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
        if trial_spec.EVALUATE in config:
            parts.append(f"config #{config.get('_rank')} ({config.get('_config_id')}) seed={config.get('seed')}")
        return " ".join(parts)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._emit(f"[{self.stage}] {trial.trial_id} start: {self._describe(trial)}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        worker = (result.get("hostname"), result.get("pid"))
        if worker[1] is not None and self._workers.get(trial.trial_id) != worker:
            # once per attempt: where the trial runs (to find a stuck or dead worker)
            self._workers[trial.trial_id] = worker
            self._emit(f"[{self.stage}] {trial.trial_id} runs on {worker[0]} pid {worker[1]}")
        value = result.get(self.metric)
        shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
        extra = ""
        if "eval_macro_f1" in result:
            extra = (
                f" | eval_macro_f1 {result['eval_macro_f1']:.4f} eval_psds {result.get('eval_psds', float('nan')):.4f}"
            )
        self._emit(
            f"[{self.stage}] {trial.trial_id} epoch {result.get('epoch', '?')}/{self.epochs} "
            f"loss {result.get('loss_total', float('nan')):.4f} {self.metric} {shown} "
            f"({result.get('epoch_seconds', float('nan')):.1f}s){extra}",
            console=self.verbose,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        epochs = last.get("epoch", 0)
        how = "done" if epochs >= self.epochs else f"stopped by the scheduler after {epochs} epochs"
        self._emit(f"[{self.stage}] {trial.trial_id} {how}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tries = f" (after {trial.num_failures - 1} retries)" if trial.num_failures > 1 else ""
        self._emit(f"[{self.stage}] {trial.trial_id} FAILED{tries}: {trial_error_text(trial) or 'see error.txt'}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = (trial.last_result or {}).get("epoch", 0)
        self._emit(
            f"[{self.stage}] {trial.trial_id} failed ({trial_error_text(trial) or 'see error.txt'}); "
            f"retry {trial.num_failures}/{self.max_failures} from its last checkpoint (epoch {epoch})"
        )


# ----------------------------------------------------------------------------- summary
def print_summary(space: Space, search: pd.DataFrame, summary: pd.DataFrame | None, exp_dir: Path) -> None:
    """The search leaderboard (first 15 rows), failures, retries, Pareto front, and the final stage."""
    counts = search["status"].value_counts().to_dict() if not search.empty else {}
    print()
    print(
        f"== search {space.name}: {len(search)} trials "
        + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))
        + " =="
    )
    columns = [
        "trial_id",
        "status",
        "label",
        *space.params.keys(),
        *dict.fromkeys(("val_macro_f1", *space.metrics, "val_psds")),  # the F1, what selected, PSDS
        "epochs_run",
        "wall_seconds",
        "train_gflop",
    ]
    if "pareto" in search:
        columns.append("pareto")
    print(format_table(search, columns, max_rows=15))
    errors = search[search["status"] == "ERROR"] if not search.empty else search
    for row in errors.itertuples(index=False):
        print(f"  {row.trial_id} failed: {row.error}")
    if "failures" in search:
        retried = search[(search["status"] != "ERROR") & (search["failures"] > 0)]
        for row in retried.itertuples(index=False):
            print(
                f"  {row.trial_id} {row.status.lower()} after {row.failures} failed attempt(s), "
                "each resumed from its last checkpoint"
            )
    print(compute_line("search", search))
    if "pareto" in search and search["pareto"].any():
        print(
            "Pareto front over "
            + " / ".join(space.metrics)
            + ": "
            + ", ".join(search.loc[search["pareto"], "trial_id"])
        )
    final_path = exp_dir / lb.FINAL_FILE
    final = lb.read_parquet(final_path) if summary is not None and final_path.is_file() else pd.DataFrame()
    if summary is not None and not summary.empty:
        print()
        print("== final stage: public evaluation set, mean [95 % CI] over seeds ==")
        print(CI_NOTE)
        if any(label in PAPER_TABLE1 for label in summary["label"].dropna()):
            print(budget_line(space))
        rows = []
        for row in summary.itertuples(index=False):
            is_control = bool(getattr(row, "control", False))
            item = {"rank": "-" if is_control else row.rank, "config": row.label or row.config_id, "seeds": row.n_seeds}
            for metric in SUMMARY_METRICS:
                if not hasattr(row, f"{metric}_mean"):
                    continue  # a final stage written before these columns existed
                mean = getattr(row, f"{metric}_mean", float("nan"))
                low = getattr(row, f"{metric}_ci95_low", float("nan"))
                high = getattr(row, f"{metric}_ci95_high", float("nan"))
                item[metric] = f"{mean:.4f} [{low:.4f}, {high:.4f}]" if pd.notna(low) else f"{mean:.4f}"
            # cost beside score: a winner that only wins by spending more shows here
            gflop = getattr(row, "train_gflop_mean", float("nan"))
            seconds = getattr(row, "wall_seconds_mean", float("nan"))
            item["train GFLOP"] = f"{gflop:.4g}" if pd.notna(gflop) else "-"
            item["wall s"] = f"{seconds:.0f}" if pd.notna(seconds) else "-"
            if row.label in PAPER_TABLE1:
                item["paper macro/psds"] = "{:.3f}/{:.3f}".format(*PAPER_TABLE1[row.label])
            rows.append(item)
        frame = pd.DataFrame(rows)
        print(format_table(frame, list(frame.columns)))
        if "eval_macro_f1_tuned_mean" in summary:
            print(TUNED_NOTE)
        for metric in COMPARED_METRICS:
            comparison = control_comparison(summary, metric)
            if comparison is not None:
                print("  " + comparison.sentence())
            paired = paired_comparison(final, summary, metric)
            if paired is not None:
                print("  " + paired.sentence())
        for note in early_epoch_notes(final, space.metric):
            print("  " + note)
        if space.groups:  # a search per group: each group's best, as the paper's Table 1
            print("\n" + format_table1(space, search, summary))
    if summary is not None and final_path.is_file():
        print(compute_line("final stage", final))
        print(compute_line("experiment", search, final))
    print()
    print(
        f"leaderboards: {exp_dir / lb.SEARCH_FILE}"
        + (f", {exp_dir / lb.FINAL_FILE}, {exp_dir / lb.FINAL_SUMMARY_FILE}" if summary is not None else "")
    )
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
