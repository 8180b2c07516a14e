"""Post-processing stage: per-class median windows and thresholds tuned on each final run's validation scores.

After the final stage (a space with `final: {..., postprocess: true}`), or on
any experiment folder with `python -m search.postprocess results/NAME`: for
every COMPLETED row of `final.parquet` (the control's too, so the comparison
stays fair), `sed.eval.pp_tuning.tune_outputs` reads the trial's
`outputs/validation/` scores, chooses a median window and a threshold per
class there (never on the public evaluation set), scores
`outputs/public_eval/` with them and writes `outputs/postprocess/`. The row
gets the tuned numbers beside the untuned ones and the values that produced
them (`TUNED_COLUMNS`, `PP_COLUMNS`; results/README.md), and
`final_summary.parquet` their mean / CI over seeds. Rows already tuned are
not tuned again (`--again` does); the run's own files are never changed. The runs
are tuned at once, one per CPU (`--workers`), each in a `python -m sed.tune_postprocess`
process of its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from . import leaderboard as lb
from .trainable import OUTPUTS_DIR

#: Public-eval scores after the tuned post-processing (beside eval_macro_f1, eval_psds1, eval_psds2).
TUNED_COLUMNS: tuple[str, ...] = ("eval_macro_f1_tuned", "eval_psds1_tuned", "eval_psds2_tuned")
#: The tuned values (JSON {class: value}) and the validation scores before / after, per row.
PP_COLUMNS: tuple[str, ...] = (
    "pp_windows_f1",
    "pp_thresholds_f1",
    "pp_windows_psds1",
    "pp_windows_psds2",
    "pp_val_macro_f1",
    "pp_val_macro_f1_tuned",
    "pp_val_psds1",
    "pp_val_psds1_tuned",
    "pp_val_psds2",
    "pp_val_psds2_tuned",
    "pp_seconds",
)


#: Final-stage columns of the summary table (those the summary has), untuned then tuned (search.postprocess).
SUMMARY_METRICS: tuple[str, ...] = (
    "eval_macro_f1",
    "eval_psds",
    "eval_psds1",
    "eval_psds2",
    "eval_macro_f1_tuned",
    "eval_psds1_tuned",
    "eval_psds2_tuned",
)
#: Metrics on which the best configuration is set against the control (those the summary has).
COMPARED_METRICS: tuple[str, ...] = ("eval_macro_f1", "eval_psds", "eval_macro_f1_tuned", "eval_psds1_tuned")
CI_NOTE = (
    "(95 % CI: Student t over the completed seeds, clipped to [0, 1] where it reaches past the range "
    "the scores live in)"
)
TUNED_NOTE = (
    "  *_tuned: after a median window and a threshold per class tuned on each run's validation scores "
    "(never on the public evaluation set), the control alike; values per run in final.parquet's pp_* columns"
)


def _number(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def row_columns(record: Mapping[str, Any]) -> dict[str, Any]:
    """A final.parquet row's TUNED_COLUMNS and PP_COLUMNS from a postprocess.json record."""
    tuned, public = record["tuned"], record["public_eval"]
    validation = tuned["validation"]
    out: dict[str, Any] = {
        "eval_macro_f1_tuned": _number(public.get("macro_f1")),
        "eval_psds1_tuned": _number(public.get("psds1")),
        "eval_psds2_tuned": _number(public.get("psds2")),
    }
    for key in ("windows_f1", "thresholds_f1", "windows_psds1", "windows_psds2"):
        out[f"pp_{key}"] = json.dumps(tuned[key], sort_keys=True)
    for metric in ("macro_f1", "psds1", "psds2"):
        out[f"pp_val_{metric}"] = _number(validation[metric]["untuned"])
        out[f"pp_val_{metric}_tuned"] = _number(validation[metric]["tuned"])
    out["pp_seconds"] = _number(record.get("seconds"))
    return out


def _outputs_of(row: Mapping[str, Any]) -> Path | None:
    trial_dir = row.get("trial_dir")
    outputs = Path(str(trial_dir)) / OUTPUTS_DIR if trial_dir else None
    return outputs if outputs is not None and (outputs / "validation").is_dir() else None


def tune_row(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """Tune one final row's run in this process (None when its outputs/ folder is missing)."""
    from sed.eval.pp_tuning import tune_outputs
    from sed.tune_postprocess import run_config

    outputs = _outputs_of(row)
    if outputs is None:
        return None
    config = run_config(outputs)
    return row_columns(tune_outputs(outputs, int(config["median_window"]), float(config["threshold"])))


def _tune_in_a_process(outputs: Path) -> dict[str, Any]:
    """Tune one run in its own `python -m sed.tune_postprocess` process (a thread of the pool waits for it):
    a fresh interpreter, so nothing of the driver (Ray's threads, torch) is forked."""
    from sed.eval.pp_tuning import read_record
    from sed.tune_postprocess import run_config

    config = run_config(outputs)
    command = [sys.executable, "-m", "sed.tune_postprocess", str(outputs)]
    command += ["--median-window", str(int(config["median_window"])), "--threshold", repr(float(config["threshold"]))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    record = read_record(outputs)
    if done.returncode != 0 or record is None:
        raise RuntimeError(f"post-processing of {outputs} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return row_columns(record)


def default_workers(rows: int) -> int:
    """Runs tuned at once: one per CPU this process may use, at most one per run."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(rows, cpus))


def _tune_rows(rows: dict[Any, Path], workers: int) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(index, columns) per run, as each finishes: in this process for one worker, else `workers` at once."""
    if workers <= 1:
        for index, outputs in rows.items():
            columns = tune_row({"trial_dir": str(outputs.parent)})
            if columns is not None:
                yield index, columns
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_tune_in_a_process, outputs): index for index, outputs in rows.items()}
        for future in as_completed(futures):
            yield futures[future], future.result()


def tune_final(
    final_path: Path, metadata: Mapping[str, str] | None = None, again: bool = False, workers: int | None = None
) -> pd.DataFrame:
    """Tune every COMPLETED row of final.parquet not yet tuned; rewrites the file atomically.

    `workers` runs are tuned at once, each in its own process (default: one per CPU, at most one per run;
    1 = one after the other in this process). The file is written once, when every run is tuned.
    """
    frame = lb.read_parquet(final_path)
    metadata = dict(lb.read_metadata(final_path) if metadata is None else metadata)
    for column in (*TUNED_COLUMNS, *PP_COLUMNS):
        if column not in frame:
            frame[column] = None if column.startswith("pp_windows") or column.startswith("pp_thresholds") else math.nan
    for column in ("pp_windows_f1", "pp_thresholds_f1", "pp_windows_psds1", "pp_windows_psds2"):
        frame[column] = frame[column].astype(object)
    pending: dict[Any, Path] = {}
    skipped = 0
    for index, row in frame.iterrows():
        if row.get("status") != "COMPLETED" or (not again and pd.notna(row.get("pp_seconds"))):
            continue
        outputs = _outputs_of(row.to_dict())
        if outputs is None:
            skipped += 1
        else:
            pending[index] = outputs
    done, seconds = 0, 0.0
    start = time.perf_counter()
    workers = default_workers(len(pending)) if workers is None else max(1, workers)
    for index, columns in _tune_rows(pending, workers):
        for key, value in columns.items():
            frame.at[index, key] = value
        done += 1
        seconds += columns["pp_seconds"]
    if done:
        lb.write_parquet_atomic(frame, final_path, metadata)
        print(
            f"sedtune: post-processing tuned per class on the validation scores of {done} final run(s), "
            f"{seconds:.1f} s of tuning in {time.perf_counter() - start:.1f} s ({min(workers, done)} at once)",
            flush=True,
        )
    if skipped:
        print(f"sedtune: {skipped} final run(s) have no outputs/validation folder; not tuned", flush=True)
    return frame


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search.postprocess",
        description="Tune per-class median windows and thresholds on each final run's validation scores, "
        "score the public evaluation set with them; fills final.parquet's *_tuned columns.",
    )
    parser.add_argument("experiment", type=Path, help="an experiment folder OUT/NAME with final.parquet")
    parser.add_argument("--again", action="store_true", help="tune rows already tuned again")
    parser.add_argument(
        "--workers", type=int, default=None, help="runs tuned at once (default: one per CPU, at most one per run)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .final import summary_frame

    exp_dir = args.experiment
    final_path = exp_dir / lb.FINAL_FILE
    if not final_path.is_file():
        print(
            f"error: {final_path} not found. Fix: give an experiment folder whose final stage ran "
            "(for a sed.train folder: python -m sed.tune_postprocess OUT).",
            file=sys.stderr,
        )
        return 2
    final = tune_final(final_path, again=args.again, workers=args.workers)
    summary_path = exp_dir / lb.FINAL_SUMMARY_FILE
    if summary_path.is_file():
        old = lb.read_parquet(summary_path)
        is_control = (
            old["control"].fillna(False).astype(bool) if "control" in old else pd.Series(False, index=old.index)
        )
        ids = list(old.loc[~is_control, "config_id"].astype(str))
        summary = summary_frame(final, ids, control=bool(is_control.any()))
        lb.write_parquet_atomic(summary, summary_path, lb.read_metadata(summary_path))
    print(f"wrote {final_path}" + (f", {summary_path}" if summary_path.is_file() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
