"""The DESED 2020 dataset (DCASE 2020 task 4): metadata, audio paths, label encoding.

Layout under the dataset root (BASELINE.md, "DESED metadata"; the audio lies
under ``audio/`` at the same relative paths as the metadata):

=================  ===========================================  ======================================
part               metadata (tab-separated, header = line 1)    audio folder
=================  ===========================================  ======================================
synthetic (strong) metadata/train/synthetic20/soundscapes.tsv   audio/train/synthetic20/soundscapes/
weak               metadata/train/weak.tsv                      audio/train/weak/
unlabeled          metadata/train/unlabel_in_domain.tsv         audio/train/unlabel_in_domain/
validation         metadata/validation/validation.tsv           audio/validation/
public evaluation  metadata/eval/public.tsv (+ public_meta.tsv) audio/eval/public/
=================  ===========================================  ======================================

Columns: strong ``filename onset offset event_label`` (a clip without events
has one row with empty onset, offset and label, as in the shipped
validation.tsv), weak ``filename event_labels`` (comma-separated), unlabeled
``filename``, durations ``filename duration``. Extra columns are ignored.

Decisions written down here:

* The synthetic set is split 80 / 20 into ``synthetic_train`` and
  ``synthetic_val`` (the baseline's selection split, BASELINE.md "Training").
  A file's side is decided by a hash of ``split_seed`` and its file name
  alone, so it does not depend on row order or on which other files exist;
  the fraction is therefore ``val_fraction`` only in expectation.
* Public-eval clips listed in ``public_meta.tsv`` but absent from
  ``public.tsv`` are clips without events and are kept (with ``[]``).
* Durations: ``public_meta.tsv`` for the public evaluation set, 10 s
  (:data:`sed.constants.CLIP_SECONDS`) for every other part.
* Events may end at most :data:`TIME_TOLERANCE_S` after the clip end.
* Same-class overlapping events are *not* refused (the shipped
  validation.tsv has 12 such pairs, BASELINE.md); the metrics merge them.
* ``audio_paths`` are the resolved dataset root joined with the lexically
  normalised file name (symbolic links below the root are not followed, so
  a symlinked audio folder works; ``..`` escapes are refused).
"""

from __future__ import annotations

import hashlib
import logging
import math
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from sed.constants import CLIP_SECONDS, DESED_CLASSES, FRAME_STEP_S, N_OUT_FRAMES
from sed.data.errors import DatasetError

if TYPE_CHECKING:  # pandas is imported when a frame is asked for (it costs ~0.5 s to import)
    import pandas as pd

__all__ = [
    "DatasetError",
    "Event",
    "Split",
    "DesedDataset",
    "load_desed",
    "encode_strong",
    "encode_weak",
    "PartLayout",
    "LAYOUT",
    "PUBLIC_META",
    "SPLIT_NAMES",
    "STRONG_COLUMNS",
    "WEAK_COLUMNS",
    "UNLABELED_COLUMNS",
    "META_COLUMNS",
    "TIME_TOLERANCE_S",
    "is_validation_file",
]

log = logging.getLogger(__name__)

#: How far (seconds) an event may end past the clip end before it is refused.
TIME_TOLERANCE_S: float = 1e-3

STRONG_COLUMNS: tuple[str, ...] = ("filename", "onset", "offset", "event_label")
WEAK_COLUMNS: tuple[str, ...] = ("filename", "event_labels")
UNLABELED_COLUMNS: tuple[str, ...] = ("filename",)
META_COLUMNS: tuple[str, ...] = ("filename", "duration")

#: Split names in the order :attr:`DesedDataset.splits` lists them.
SPLIT_NAMES: tuple[str, ...] = (
    "synthetic_train",
    "synthetic_val",
    "weak",
    "unlabeled",
    "validation",
    "public_eval",
)


@dataclass(frozen=True)
class PartLayout:
    """Where one DESED part lives under the dataset root."""

    metadata: str  # relative path of the TSV
    audio_dir: str  # relative path of the audio folder
    kind: str  # 'strong' | 'weak' | 'unlabeled'


#: The DESED 2020 layout (BASELINE.md). Keys are the parts as the metadata has them.
LAYOUT: dict[str, PartLayout] = {
    "synthetic": PartLayout(
        "metadata/train/synthetic20/soundscapes.tsv", "audio/train/synthetic20/soundscapes", "strong"
    ),
    "weak": PartLayout("metadata/train/weak.tsv", "audio/train/weak", "weak"),
    "unlabeled": PartLayout(
        "metadata/train/unlabel_in_domain.tsv", "audio/train/unlabel_in_domain", "unlabeled"
    ),
    "validation": PartLayout("metadata/validation/validation.tsv", "audio/validation", "strong"),
    "public_eval": PartLayout("metadata/eval/public.tsv", "audio/eval/public", "strong"),
}
#: Durations of the public evaluation clips.
PUBLIC_META: str = "metadata/eval/public_meta.tsv"

_FIX_LAYOUT = (
    "Fix: pass the folder that holds the DESED 2020 metadata/ and audio/ folders "
    "(see sed/data/desed.py for the layout), or give no data root to use the embedded dataset."
)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Event:
    """One strongly labelled event: seconds from the clip start, and its class."""

    onset: float
    offset: float
    label: str


@dataclass
class Split:
    """One part of the dataset, clips in metadata order.

    ``events`` is set for strong parts (``[]`` for a clip without events),
    ``weak_labels`` for the weak part and, derived from the events (sorted,
    unique), for strong parts; both are None for the unlabeled part.
    """

    name: str
    filenames: list[str]
    audio_paths: list[Path]
    events: list[list[Event]] | None
    weak_labels: list[list[str]] | None
    durations: list[float]

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def is_strong(self) -> bool:
        return self.events is not None

    def strong_targets(self, labels: Sequence[str], offset_rounding: str = "floor") -> np.ndarray:
        """Frame targets ``[N, 157, C]`` float32 (:func:`encode_strong` per clip)."""
        if self.events is None:
            raise DatasetError(
                f"split '{self.name}' has no strong (onset/offset) labels. "
                "Fix: ask for strong targets only on synthetic_train, synthetic_val, validation or public_eval."
            )
        labels = tuple(labels)
        if not self.events:
            return np.zeros((0, N_OUT_FRAMES, len(labels)), dtype=np.float32)
        return np.stack([encode_strong(clip, labels, offset_rounding=offset_rounding) for clip in self.events])

    def weak_targets(self, labels: Sequence[str]) -> np.ndarray:
        """Clip targets ``[N, C]`` float32 (from weak labels, or from the events)."""
        labels = tuple(labels)
        if self.weak_labels is not None:
            names = self.weak_labels
        elif self.events is not None:
            names = [sorted({e.label for e in clip}) for clip in self.events]
        else:
            raise DatasetError(
                f"split '{self.name}' has no labels. "
                "Fix: ask for weak targets only on labelled splits (not 'unlabeled')."
            )
        if not names:
            return np.zeros((0, len(labels)), dtype=np.float32)
        return np.stack([encode_weak(clip, labels) for clip in names])

    def events_frame(self) -> pd.DataFrame:
        """Events as a DataFrame with columns filename, onset, offset, event_label.

        Clips without events have no row (use :attr:`filenames` for the list of clips).
        """
        if self.events is None:
            raise DatasetError(
                f"split '{self.name}' has no strong (onset/offset) labels. "
                "Fix: ask for events only on synthetic_train, synthetic_val, validation or public_eval."
            )
        import pandas as pd

        rows = [
            (name, ev.onset, ev.offset, ev.label)
            for name, clip in zip(self.filenames, self.events)
            for ev in clip
        ]
        frame = pd.DataFrame(rows, columns=list(STRONG_COLUMNS))
        return frame.astype({"filename": str, "onset": float, "offset": float, "event_label": str})


@dataclass
class DesedDataset:
    """All parts of one DESED-format dataset, checked.

    ``splits`` has the keys of :data:`SPLIT_NAMES`; ``missing_audio`` counts,
    per split, the clips dropped by ``skip_missing_audio=True`` (all 0 otherwise).
    """

    root: Path
    labels: tuple[str, ...]
    splits: dict[str, Split]
    missing_audio: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- encoding


def encode_strong(
    events: Iterable[Event],
    labels: Sequence[str],
    n_frames: int = N_OUT_FRAMES,
    frame_step: float = FRAME_STEP_S,
    offset_rounding: str = "floor",
) -> np.ndarray:
    """Frame targets ``[n_frames, C]`` float32 for one clip.

    Frame ``i`` covers ``[i * frame_step, (i + 1) * frame_step)`` (63.75 ms by
    default, BASELINE.md "Post-processing"); an event marks frames
    ``floor(onset / step)`` up to, not including, ``floor(offset / step)``
    (``offset_rounding='floor'``: the reference's ``main.py`` +
    ``ManyHotEncoder.encode_strong_df``, offset frame excluded) or
    ``ceil(offset / step)`` (``'ceil'``: every frame the event overlaps, one
    more frame per event), clipped to ``[0, n_frames)``. With ``'floor'`` an
    event inside a single frame marks nothing, as in the reference. A
    relative slack of 1e-6 frame keeps times that lie exactly on a frame
    boundary (up to float rounding) on that boundary.
    """
    if offset_rounding not in ("floor", "ceil"):
        raise ValueError(f"offset_rounding={offset_rounding!r}: choose 'floor' (reference) or 'ceil'")
    index = _label_index(labels)
    targets = np.zeros((n_frames, len(index)), dtype=np.float32)
    for event in events:
        column = _column(index, event.label, labels)
        first = max(0, math.floor(event.onset / frame_step + 1e-6))
        if offset_rounding == "floor":
            stop = min(n_frames, math.floor(event.offset / frame_step + 1e-6))
        else:
            stop = min(n_frames, math.ceil(event.offset / frame_step - 1e-6))
        if stop > first:
            targets[first:stop, column] = 1.0
    return targets


def encode_weak(label_names: Iterable[str], labels: Sequence[str]) -> np.ndarray:
    """Clip target ``[C]`` float32: 1 for each class present."""
    index = _label_index(labels)
    target = np.zeros(len(index), dtype=np.float32)
    for name in label_names:
        target[_column(index, name, labels)] = 1.0
    return target


def _label_index(labels: Sequence[str]) -> dict[str, int]:
    if isinstance(labels, str):
        raise DatasetError(f"labels must be a sequence of class names, got the string {labels!r}.")
    return {name: i for i, name in enumerate(labels)}


def _column(index: dict[str, int], name: str, labels: Sequence[str]) -> int:
    try:
        return index[name]
    except KeyError:
        raise DatasetError(
            f"label {name!r} is not in the label set {tuple(labels)}. "
            "Fix: use the label set the dataset was loaded with (DesedDataset.labels)."
        ) from None


# --------------------------------------------------------------------------- split


def is_validation_file(filename: str, split_seed: int = 2020, val_fraction: float = 0.2) -> bool:
    """Whether a synthetic file goes to ``synthetic_val``: a hash of seed and name only."""
    digest = hashlib.sha256(f"{split_seed}\0{filename}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction


# --------------------------------------------------------------------------- TSV reading


@dataclass
class _Row:
    line: int
    values: dict[str, str]


def _read_tsv(path: Path, columns: Sequence[str], what: str) -> list[_Row]:
    """Rows of a tab-separated file with a header line (line 1); blank lines are skipped."""
    if not path.is_file():
        raise DatasetError(
            f"{path}: {what} metadata file not found. {_FIX_LAYOUT}"
        )
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
        if len(fields) > len(header) and any(fields[len(header):]):
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
            f"{path} line {row.line}: {column} {text!r} is not a number. "
            f"Fix: write {column} in seconds (e.g. 1.250)."
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


# --------------------------------------------------------------------------- parts


@dataclass
class _Part:
    """A part as read from its metadata, before the audio check."""

    name: str
    metadata: Path
    audio_dir: Path
    filenames: list[str]
    lines: list[int]  # first line mentioning each file
    events: list[list[Event]] | None
    weak_labels: list[list[str]] | None
    durations: list[float]


class _LabelCheck:
    """Collects label occurrences; refuses unknown ones at once when the set is fixed."""

    def __init__(self, fixed: tuple[str, ...] | None) -> None:
        self.fixed = fixed
        self.allowed = set(fixed) if fixed is not None else None
        self.seen: set[str] = set()

    def __call__(self, label: str, path: Path, line: int) -> str:
        if self.allowed is not None and label not in self.allowed:
            raise DatasetError(
                f"{path} line {line}: label {label!r} is not in the label set {self.fixed}. "
                "Fix: correct the label, or load with labels=None (or a label set that includes it)."
            )
        self.seen.add(label)
        return label


def _read_durations(root: Path) -> tuple[Path, dict[str, float], dict[str, int], list[str]]:
    path = root / PUBLIC_META
    durations: dict[str, float] = {}
    lines: dict[str, int] = {}
    order: list[str] = []
    for row in _read_tsv(path, META_COLUMNS, "public evaluation durations"):
        name = _relative_audio(path, row, LAYOUT["public_eval"].audio_dir)
        if name in durations:
            raise DatasetError(
                f"{path} line {row.line}: {name!r} is listed twice (first on line {lines[name]}). "
                "Fix: keep one row per clip."
            )
        value = _time(path, row, "duration")
        if value <= 0:
            raise DatasetError(
                f"{path} line {row.line}: duration {value} of {name!r} is not positive. "
                "Fix: write the clip length in seconds."
            )
        durations[name] = value
        lines[name] = row.line
        order.append(name)
    return path, durations, lines, order


def _read_strong(
    root: Path,
    part: str,
    check_label: _LabelCheck,
    durations: dict[str, float] | None = None,
    duration_source: str = "",
) -> tuple[Path, list[str], list[int], dict[str, list[Event]]]:
    layout = LAYOUT[part]
    path = root / layout.metadata
    clips: dict[str, list[Event]] = {}
    first_line: dict[str, int] = {}
    for row in _read_tsv(path, STRONG_COLUMNS, f"{part} (strong)"):
        name = _relative_audio(path, row, layout.audio_dir)
        if name not in clips:
            clips[name] = []
            first_line[name] = row.line
        onset_text, offset_text, label = (row.values[c] for c in ("onset", "offset", "event_label"))
        if not onset_text and not offset_text and not label:
            continue  # a clip without events
        if not (onset_text and offset_text and label):
            empty = [c for c in ("onset", "offset", "event_label") if not row.values[c]]
            raise DatasetError(
                f"{path} line {row.line}: {', '.join(empty)} empty while the other event fields are set. "
                "Fix: fill onset, offset and event_label, or leave all three empty for a clip without events."
            )
        onset = _time(path, row, "onset")
        offset = _time(path, row, "offset")
        if onset >= offset:
            raise DatasetError(
                f"{path} line {row.line}: onset {onset} >= offset {offset}. "
                "Fix: the onset must come before the offset (seconds); swap or correct them."
            )
        if durations is not None:
            if name not in durations:
                raise DatasetError(
                    f"{path} line {row.line}: {name!r} has no duration in {root / PUBLIC_META}. "
                    "Fix: add a row 'filename<TAB>duration' for it there."
                )
            clip_end, source = durations[name], duration_source
        else:
            clip_end, source = CLIP_SECONDS, f"the {CLIP_SECONDS:g} s DESED clip length"
        if offset > clip_end + TIME_TOLERANCE_S:
            raise DatasetError(
                f"{path} line {row.line}: event {label!r} ends at {offset} s, after the clip end "
                f"({clip_end} s, {source}). Fix: correct the offset (at most the clip duration)."
            )
        clips[name].append(Event(onset, offset, check_label(label, path, row.line)))
    for events in clips.values():
        events.sort(key=lambda e: (e.onset, e.offset, e.label))
    names = list(clips)
    return path, names, [first_line[n] for n in names], clips


def _read_weak(root: Path, check_label: _LabelCheck) -> _Part:
    layout = LAYOUT["weak"]
    path = root / layout.metadata
    names: list[str] = []
    lines: dict[str, int] = {}
    labels: list[list[str]] = []
    for row in _read_tsv(path, WEAK_COLUMNS, "weak"):
        name = _relative_audio(path, row, layout.audio_dir)
        if name in lines:
            raise DatasetError(
                f"{path} line {row.line}: {name!r} is listed twice (first on line {lines[name]}). "
                "Fix: keep one row per clip, with all its labels comma-separated."
            )
        parts = [p.strip() for p in row.values["event_labels"].split(",")]
        clip = sorted({check_label(p, path, row.line) for p in parts if p})
        names.append(name)
        lines[name] = row.line
        labels.append(clip)
    return _Part(
        "weak", path, root / layout.audio_dir, names, [lines[n] for n in names], None, labels,
        [CLIP_SECONDS] * len(names),
    )


def _read_unlabeled(root: Path) -> _Part:
    layout = LAYOUT["unlabeled"]
    path = root / layout.metadata
    names: list[str] = []
    lines: dict[str, int] = {}
    for row in _read_tsv(path, UNLABELED_COLUMNS, "unlabeled"):
        name = _relative_audio(path, row, layout.audio_dir)
        if name in lines:
            raise DatasetError(
                f"{path} line {row.line}: {name!r} is listed twice (first on line {lines[name]}). "
                "Fix: keep one row per clip."
            )
        names.append(name)
        lines[name] = row.line
    return _Part(
        "unlabeled", path, root / layout.audio_dir, names, [lines[n] for n in names], None, None,
        [CLIP_SECONDS] * len(names),
    )


def _strong_part(
    name: str, root: Path, part: str, path: Path, names: list[str], lines: list[int],
    clips: dict[str, list[Event]], durations: list[float],
) -> _Part:
    events = [clips[n] for n in names]
    weak = [sorted({e.label for e in clip}) for clip in events]
    return _Part(name, path, root / LAYOUT[part].audio_dir, names, lines, events, weak, durations)


def _subset(part: _Part, name: str, keep: list[int]) -> _Part:
    return _Part(
        name,
        part.metadata,
        part.audio_dir,
        [part.filenames[i] for i in keep],
        [part.lines[i] for i in keep],
        None if part.events is None else [part.events[i] for i in keep],
        None if part.weak_labels is None else [part.weak_labels[i] for i in keep],
        [part.durations[i] for i in keep],
    )


# --------------------------------------------------------------------------- audio


def _audio_problem(path: Path) -> str | None:
    """None when ``path`` is a readable audio file with samples, else what is wrong."""
    if not path.is_file():
        return "missing"
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        return f"unreadable ({str(exc).strip() or type(exc).__name__})"
    if info.frames <= 0:
        return "empty (no samples)"
    if info.channels <= 0:
        return "has no channels"
    return None


def _check_audio(part: _Part, skip_missing_audio: bool) -> tuple[Split, int]:
    paths = [_join(part.audio_dir, n) for n in part.filenames]
    problems = [_audio_problem(p) for p in paths]
    bad = [i for i, problem in enumerate(problems) if problem is not None]
    if bad and not skip_missing_audio:
        shown = "; ".join(
            f"{paths[i]} (listed on line {part.lines[i]}): {problems[i]}" for i in bad[:5]
        )
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DatasetError(
            f"{part.metadata}: {len(bad)} of the {len(paths)} listed audio files missing or unreadable: "
            f"{shown}{more}. Fix: restore the audio under {part.audio_dir}/, remove those rows from the "
            "metadata, or load with skip_missing_audio=True to drop them (they are counted in missing_audio)."
        )
    keep = [i for i, problem in enumerate(problems) if problem is None]
    kept = _subset(part, part.name, keep)
    split = Split(
        name=part.name,
        filenames=kept.filenames,
        audio_paths=[paths[i] for i in keep],
        events=kept.events,
        weak_labels=kept.weak_labels,
        durations=kept.durations,
    )
    return split, len(bad)


def _join(folder: Path, name: str) -> Path:
    return folder / posixpath.normpath(name.replace("\\", "/"))


# --------------------------------------------------------------------------- entry point


def _labels_argument(labels: Sequence[str] | None) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        raise DatasetError(
            f"labels={labels!r} is a single string. Fix: pass a list of class names, or None."
        )
    fixed = tuple(labels)
    if not fixed:
        raise DatasetError("labels is empty. Fix: pass at least one class name, or None.")
    bad = [name for name in fixed if not isinstance(name, str) or not name.strip() or "," in name]
    if bad:
        raise DatasetError(f"labels {bad} are not valid class names (empty, or containing ','). Fix: rename them.")
    duplicates = sorted({name for name in fixed if fixed.count(name) > 1})
    if duplicates:
        raise DatasetError(f"labels lists {duplicates} more than once. Fix: list each class once.")
    return fixed


def load_desed(
    root: str | Path,
    labels: Sequence[str] | None = None,
    skip_missing_audio: bool = False,
    val_fraction: float = 0.2,
    split_seed: int = 2020,
) -> DesedDataset:
    """Read and check a DESED 2020 dataset under ``root`` (layout in the module docstring).

    ``labels``: a fixed label set (any other label is refused), or None: the ten
    DESED classes when every label found is one of them, else the sorted union.
    All metadata is checked first, then every listed audio file is opened with
    ``soundfile.info``; any problem raises :class:`DatasetError` naming the file
    (and line) and the fix. ``skip_missing_audio=True`` drops missing or
    unreadable clips instead, counts them per split in ``missing_audio`` and
    logs a warning.
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise DatasetError(
            f"val_fraction={val_fraction} is outside (0, 1). Fix: use e.g. 0.2 (the baseline's 80/20 split)."
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root is not a directory. {_FIX_LAYOUT}")
    root = root.resolve()
    check_label = _LabelCheck(_labels_argument(labels))

    # Metadata first: every format problem is reported before any audio is touched.
    syn_path, syn_names, syn_lines, syn_clips = _read_strong(root, "synthetic", check_label)
    weak = _read_weak(root, check_label)
    unlabeled = _read_unlabeled(root)
    val_path, val_names, val_lines, val_clips = _read_strong(root, "validation", check_label)
    meta_path, meta_durations, meta_lines, meta_order = _read_durations(root)
    eval_path, eval_names, eval_lines, eval_clips = _read_strong(
        root, "public_eval", check_label, meta_durations, f"from {meta_path}"
    )
    # Clips with a duration but no row in public.tsv are clips without events.
    listed = set(eval_clips)
    for name in meta_order:
        if name not in listed:
            eval_names.append(name)
            eval_lines.append(meta_lines[name])
            eval_clips[name] = []

    synthetic = _strong_part(
        "synthetic", root, "synthetic", syn_path, syn_names, syn_lines, syn_clips,
        [CLIP_SECONDS] * len(syn_names),
    )
    side = [is_validation_file(n, split_seed, val_fraction) for n in synthetic.filenames]
    parts = [
        _subset(synthetic, "synthetic_train", [i for i, v in enumerate(side) if not v]),
        _subset(synthetic, "synthetic_val", [i for i, v in enumerate(side) if v]),
        weak,
        unlabeled,
        _strong_part(
            "validation", root, "validation", val_path, val_names, val_lines, val_clips,
            [CLIP_SECONDS] * len(val_names),
        ),
        _strong_part(
            "public_eval", root, "public_eval", eval_path, eval_names, eval_lines, eval_clips,
            [meta_durations.get(n, CLIP_SECONDS) for n in eval_names],
        ),
    ]
    for part in parts:
        if not part.filenames:
            _refuse_empty(part, val_fraction, split_seed, dropped=0)

    splits: dict[str, Split] = {}
    missing: dict[str, int] = {}
    for part in parts:
        split, dropped = _check_audio(part, skip_missing_audio)
        if not split.filenames:
            _refuse_empty(part, val_fraction, split_seed, dropped)
        splits[part.name] = split
        missing[part.name] = dropped
    if any(missing.values()):
        log.warning(
            "skipped %d missing or unreadable audio files under %s (%s)",
            sum(missing.values()),
            root,
            ", ".join(f"{name}: {count}" for name, count in missing.items() if count),
        )

    fixed = check_label.fixed
    if fixed is not None:
        label_set = fixed
    elif check_label.seen <= set(DESED_CLASSES):
        label_set = DESED_CLASSES
    else:
        label_set = tuple(sorted(check_label.seen))
    return DesedDataset(root=root, labels=tuple(label_set), splits=splits, missing_audio=missing)


def _refuse_empty(part: _Part, val_fraction: float, split_seed: int, dropped: int) -> None:
    if dropped:
        raise DatasetError(
            f"{part.metadata}: all {dropped} audio files of split '{part.name}' are missing or unreadable, "
            f"so the split is empty. Fix: restore the audio under {part.audio_dir}/."
        )
    if part.name in ("synthetic_train", "synthetic_val"):
        side = "selection (validation)" if part.name == "synthetic_val" else "training"
        raise DatasetError(
            f"{part.metadata}: no synthetic clip falls in the {side} side of the "
            f"{1 - val_fraction:.0%}/{val_fraction:.0%} split (split_seed={split_seed}), so "
            f"'{part.name}' is empty. Fix: add synthetic clips, or change split_seed or val_fraction."
        )
    raise DatasetError(
        f"{part.metadata}: split '{part.name}' lists no clips. Fix: add at least one clip row under the header."
    )
