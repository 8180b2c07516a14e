"""The parts of a DESED 2020 tree: where each lives, and reading and checking each one.

One job: for each part (synthetic, weak, unlabeled, validation, public
evaluation) read its metadata (`sed.data.tsv`), check its labels, times and
durations, and check that its audio exists and decodes -- the private
workers of `sed.data.desed.load_desed`, which assembles the splits.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from sed.constants import CLIP_SECONDS
from sed.data.errors import DatasetError
from sed.data.splits import META_COLUMNS, STRONG_COLUMNS, UNLABELED_COLUMNS, WEAK_COLUMNS, Event, Split
from sed.data.tsv import _read_tsv, _relative_audio, _time

log = logging.getLogger("sed.data.desed")

#: How far (seconds) an event may end past the clip end before it is refused.
TIME_TOLERANCE_S: float = 1e-3


@dataclass(frozen=True)
class PartLayout:
    """Where one DESED part lives under the dataset root."""

    metadata: str  # relative path of the TSV
    audio_dir: str  # relative path of the audio folder
    kind: str  # 'strong' | 'weak' | 'unlabeled'


#: The DESED 2020 layout (docs/reference.md). Keys are the parts as the metadata has them.
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
