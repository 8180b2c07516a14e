"""Reading DESED's tab-separated metadata files, with line numbers for every refusal.

One job: `_read_tsv` returns the rows of a TSV with the columns asked for
(header on line 1, extra columns ignored, blank lines skipped without
shifting line numbers); `_time` and `_relative_audio` read and check one
cell. Every refusal is a `DatasetError` naming the file, the line and the fix.
These are the private helpers of `sed.data.desed`.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sed.data.errors import DatasetError

_FIX_LAYOUT = (
    "Fix: pass the folder that holds the DESED metadata/ and audio/ folders (the 2020 or 2021+ layout, "
    "sed/data/layouts.py), describe where each part lives in a layout file (--set layout=FILE), "
    "or give no data root to use the embedded dataset."
)


@dataclass
class _Row:
    line: int
    values: dict[str, str]


def _read_tsv(path: Path, columns: Sequence[str], what: str) -> list[_Row]:
    """Rows of a tab-separated file with a header line (line 1); blank lines are skipped."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} metadata file not found. {_FIX_LAYOUT}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"{path}: cannot read the {what} metadata ({exc}). Fix: save it as UTF-8 text, tab-separated."
        ) from exc
    lines = text.split("\n")
    header = [_unquote(c) for c in lines[0].rstrip("\r").split("\t")] if lines else []
    expected = "\\t".join(columns)
    if not header or header == [""]:
        raise DatasetError(
            f"{path} line 1: the file is empty; expected the header '{expected}'. "
            f"Fix: write the header '{expected}' as line 1, then one row per clip/event."
        )
    if len(set(header)) != len(header):
        raise DatasetError(
            f"{path} line 1: duplicate column names in header {header}. Fix: use the header '{expected}'."
        )
    missing = [c for c in columns if c not in header]
    if missing:
        hint = ""
        if header[0].lower().endswith((".wav", ".flac", ".mp3", ".ogg")):
            hint = " The first line looks like data: the header line is missing."
        elif len(header) == 1 and ("," in header[0] or " " in header[0]):
            hint = " The header has no tab: the file must be tab-separated."
        raise DatasetError(
            f"{path} line 1: header {header} lacks column(s) {missing}.{hint} "
            f"Fix: make line 1 the tab-separated header '{expected}'."
        )
    positions = {c: header.index(c) for c in columns}
    rows: list[_Row] = []
    for number, raw in enumerate(lines[1:], start=2):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        fields = [_unquote(f) for f in raw.split("\t")]
        if len(fields) > len(header) and any(fields[len(header) :]):
            raise DatasetError(
                f"{path} line {number}: {len(fields)} tab-separated fields but the header has "
                f"{len(header)} ({header}). Fix: remove the extra fields or tabs on that line."
            )
        fields = fields[: len(header)] + [""] * (len(header) - len(fields))
        rows.append(_Row(number, {c: fields[i] for c, i in positions.items()}))
    return rows


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].strip()
    return value


def _relative_audio(path: Path, row: _Row, audio_dir: str) -> str:
    """The file name of a row, checked not to leave the audio folder."""
    name = row.values["filename"]
    if not name:
        raise DatasetError(f"{path} line {row.line}: empty filename. Fix: write the clip's file name.")
    slashed = name.replace("\\", "/")
    normal = posixpath.normpath(slashed)
    if (
        slashed.startswith("/")
        or (len(slashed) > 1 and slashed[1] == ":")
        or normal == "."
        or normal == ".."
        or normal.startswith("../")
    ):
        raise DatasetError(
            f"{path} line {row.line}: filename {name!r} points outside the dataset's {audio_dir}/ folder. "
            f"Fix: write file names relative to {audio_dir}/ without '..' or a leading '/'."
        )
    return name


def _time(path: Path, row: _Row, column: str) -> float:
    text = row.values[column]
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(
            f"{path} line {row.line}: {column} {text!r} is not a number. Fix: write {column} in seconds (e.g. 1.250)."
        ) from None
    if not math.isfinite(value):
        raise DatasetError(
            f"{path} line {row.line}: {column} {text!r} is not a finite number. Fix: write it in seconds."
        )
    if value < 0:
        raise DatasetError(
            f"{path} line {row.line}: {column} {value} is negative. Fix: times are seconds from the clip start (>= 0)."
        )
    return value
