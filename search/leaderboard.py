"""Parquet leaderboards of a search and of its final stage (DESIGN.md, "Leaderboards").

Files written in the experiment directory `OUT/NAME/`:

- `search.parquet`: one row per search trial -- `trial_id`, `status`
  (COMPLETED: ran all epochs; EARLY_STOPPED: stopped by ASHA; ERROR:
  failed, `error` says why; NOT_STARTED), `error`, `failures` (failed
  attempts: each retry allowed by `max_failures` resumes the trial from its
  last epoch's checkpoint), `label` (grid point name),
  `config_id`, every hyperparameter of the trial config in its own column
  (`cnn_filters` as a comma string), `val_macro_f1` / `val_psds` (best value
  over the trial's epochs), `selection_value` (best of the selection metric,
  the one the top-k uses), `best_epoch` (epoch of that best), `epochs_run`,
  `wall_seconds`, `trial_dir`, `config_json` (the exact trial config).
- `final.parquet`: one row per (config, seed) of the final stage --
  `config_id`, `label`, `rank` (of the config in the search), `search_trial_id`,
  `seed`, the config columns, `val_macro_f1`/`val_psds` (best over epochs),
  `eval_macro_f1`, `eval_micro_f1`, `eval_psds`, `eval_psds_ct`,
  `eval_psds_macro` (public evaluation set, model selected on validation F1),
  `eval_per_class_f1` (JSON), `status`, `error`, `failures`, `epochs_run`,
  `wall_seconds`.
- `final_summary.parquet`: one row per config -- `n_seeds`, and for each
  metric `<metric>_mean`, `<metric>_std` (sample std, ddof=1),
  `<metric>_ci95_low` / `<metric>_ci95_high` (mean -/+ t_{0.975, n-1} *
  std / sqrt(n), Student t; NaN for n < 2).

Every file is written atomically (temporary file in the same folder, then
`os.replace`) and carries schema metadata under `sedtune.*` keys: the space
(YAML text), the git commit, package versions (JSON), the creation time,
the stage, the selection metric(s) and the data root.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

META_PREFIX = "sedtune."
SEARCH_FILE = "search.parquet"
FINAL_FILE = "final.parquet"
FINAL_SUMMARY_FILE = "final_summary.parquet"
#: Metrics aggregated over seeds in final_summary.parquet.
FINAL_METRICS: tuple[str, ...] = (
    "eval_macro_f1",
    "eval_psds",
    "eval_psds_ct",
    "eval_psds_macro",
    "val_macro_f1",
    "val_psds",
)
EVAL_METRICS: tuple[str, ...] = ("eval_macro_f1", "eval_micro_f1", "eval_psds", "eval_psds_ct", "eval_psds_macro")


# ----------------------------------------------------------------------------- metadata
def git_commit(repo: Path | None = None) -> str:
    """`git rev-parse HEAD` of the repository holding this package ('unknown' if none)."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else "unknown"


def package_versions() -> dict[str, str]:
    """Metric libraries (sed.metrics.metric_versions) + ray, optuna, torch, pyarrow, python."""
    versions: dict[str, str] = {}
    try:
        from sed.metrics import metric_versions

        versions.update({k: str(v) for k, v in metric_versions().items()})
    except Exception:  # the metrics module is optional for the leaderboard itself
        pass
    import platform

    versions["python"] = platform.python_version()
    for name in ("ray", "optuna", "torch", "pyarrow", "pandas", "numpy"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "unknown"))
        except Exception:
            versions[name] = "missing"
    return versions


def run_metadata(
    space_text: str,
    stage: str,
    metrics: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    versions: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The `sedtune.*` metadata of a leaderboard file (all values are strings)."""
    meta = {
        "space": space_text,
        "git_commit": git_commit(),
        "versions": json.dumps(dict(versions) if versions is not None else package_versions(), sort_keys=True),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "stage": stage,
        "metric": ",".join(metrics),
    }
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    return meta


def read_metadata(path: Path | str) -> dict[str, str]:
    """The `sedtune.*` metadata of a Parquet file, prefix removed."""
    schema = pq.read_schema(path)
    raw = schema.metadata or {}
    return {
        k.decode()[len(META_PREFIX):]: v.decode()
        for k, v in raw.items()
        if k.decode().startswith(META_PREFIX)
    }


# ----------------------------------------------------------------------------- writing
def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types (e.g. numbers and text) become text."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        kinds = {type(v) for v in frame[column] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(kinds) > 1 or kinds & {list, tuple, dict}:
            frame[column] = [
                None if v is None or (isinstance(v, float) and math.isnan(v))
                else (json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v))
                for v in frame[column]
            ]
    return frame


def write_parquet_atomic(frame: pd.DataFrame, path: Path | str, metadata: Mapping[str, str]) -> Path:
    """Write `frame` to `path` with `sedtune.*` schema metadata; readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(_arrow_safe(frame), preserve_index=False)
    merged = dict(table.schema.metadata or {})
    merged.update({f"{META_PREFIX}{k}".encode(): str(v).encode() for k, v in metadata.items()})
    table = table.replace_schema_metadata(merged)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_parquet(path: Path | str) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


# ----------------------------------------------------------------------------- statistics
def mean_std_ci95(values: Iterable[float]) -> tuple[int, float, float, float, float]:
    """(n, mean, sample std, low, high) with the Student-t 95 % interval of the mean.

    half-width = t.ppf(0.975, n - 1) * std / sqrt(n); NaN std/CI for n < 2.
    NaN inputs (e.g. a failed seed) are left out.
    """
    from scipy import stats

    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = int(data.size)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(data.mean())
    if n < 2:
        return n, mean, math.nan, math.nan, math.nan
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return n, mean, std, mean - half, mean + half


def summarize_final(final: pd.DataFrame, metrics: Sequence[str] = FINAL_METRICS) -> pd.DataFrame:
    """One row per config_id: n_seeds and mean/std/CI of each metric, in search-rank order."""
    rows = []
    if final.empty:
        return pd.DataFrame(columns=["config_id", "label", "rank", "n_seeds"])
    ok = final[final["status"] == "COMPLETED"] if "status" in final else final
    for config_id, group in final.groupby("config_id", sort=False):
        good = ok[ok["config_id"] == config_id]
        first = group.iloc[0]
        row: dict[str, Any] = {
            "config_id": config_id,
            "label": first.get("label"),
            "rank": first.get("rank"),
            "search_trial_id": first.get("search_trial_id"),
            "n_seeds": int(len(good)),
            "seeds": ",".join(str(int(s)) for s in sorted(good["seed"])) if len(good) else "",
        }
        for metric in metrics:
            if metric not in good:
                continue
            n, mean, std, low, high = mean_std_ci95(good[metric].astype(float))
            row[f"{metric}_mean"] = mean
            row[f"{metric}_std"] = std
            row[f"{metric}_ci95_low"] = low
            row[f"{metric}_ci95_high"] = high
        rows.append(row)
    out = pd.DataFrame(rows)
    if "rank" in out and out["rank"].notna().all():
        out = out.sort_values("rank", kind="stable").reset_index(drop=True)
    return out


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


# ----------------------------------------------------------------------------- display
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
