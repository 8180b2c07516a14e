"""Leaderboard files: atomic Parquet with the run's `sedtune.*` metadata, and reading them back.

The three files of an experiment folder `OUT/NAME/` (their columns:
`search.rows`) are written atomically -- a temporary file in the same
folder, then `os.replace`, so a reader never sees half a file and a failed
write keeps the previous one -- and carry schema metadata under `sedtune.*`
keys: the space (YAML text), the git commit, package versions (JSON), the
creation time, the stage, the selection metric(s), the data root and the
experiment folder (docs/design.md, "Leaderboards").
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sed.io import write_atomic

from .masking import mask_text

META_PREFIX = "sedtune."
SEARCH_FILE = "search.parquet"
FINAL_FILE = "final.parquet"
FINAL_SUMMARY_FILE = "final_summary.parquet"


# ----------------------------------------------------------------------------- metadata
def git_commit(repo: Path | None = None) -> str:
    """`git rev-parse HEAD` of the repository holding this package ('unknown' if none)."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else "unknown"


def package_versions() -> dict[str, str]:
    """Metric libraries (sed.eval.metrics.metric_versions) + ray, optuna, torch, pyarrow, python."""
    versions: dict[str, str] = {}
    try:
        from sed.eval.metrics import metric_versions

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
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "stage": stage,
        "metric": ",".join(metrics),
    }
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    # a space's storage: URL may hold a password, a path a key: masked (search.masking)
    return {key: mask_text(value) for key, value in meta.items()}


def read_metadata(path: Path | str) -> dict[str, str]:
    """The `sedtune.*` metadata of a Parquet file, prefix removed."""
    schema = pq.read_schema(path)
    raw = schema.metadata or {}
    return {k.decode()[len(META_PREFIX) :]: v.decode() for k, v in raw.items() if k.decode().startswith(META_PREFIX)}


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
                None
                if v is None or (isinstance(v, float) and math.isnan(v))
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
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet(path: Path | str) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()
