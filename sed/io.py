"""Files written whole or not at all, and JSON that strict readers accept.

`write_atomic(path, write)` is the one atomic write of the project: `write` fills a
temporary file beside `path` (same folder, so the same file system), which then replaces
`path` with `os.replace`; a reader sees the old file or the new one, never half of one, and
a failed write leaves the old file and no temporary behind. `fsync=True` also flushes the
file and its folder to the disk (the feature cache's sidecars).

JSON: Python's ``json`` writes a non-finite float as the bare word ``NaN``, which is not
JSON (RFC 8259) and which strict readers (``jq``, JavaScript's ``JSON.parse``, most other
languages) refuse. Metrics have such values whenever a class or score is undefined on a
split (the F1 of a class with no reference event is 0/0), so `write_json` writes them as
``null`` (`json_ready`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_ready", "write_atomic", "write_json", "write_text"]


def write_atomic(path: Path | str, write: Callable[[Path], None], fsync: bool = False) -> Path:
    """Fill a temporary file beside `path` with `write(tmp)`, then move it onto `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename) to the disk, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: Path | str, text: str, fsync: bool = False) -> Path:
    """`text` (UTF-8) written atomically to `path`."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return write_atomic(path, write, fsync)


def json_ready(value: Any) -> Any:
    """``value`` with NaN / inf as None and NumPy scalars and arrays as Python values."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path | str, payload: Any, indent: int | None = 2, fsync: bool = False) -> Path:
    """Strict JSON (NaN and inf as null, NumPy values as Python ones), written atomically."""
    text = json.dumps(json_ready(payload), indent=indent, allow_nan=False, default=str)
    return write_text(path, text, fsync)
