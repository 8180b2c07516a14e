"""The parts of a DESED tree: reading and checking each one.

One job: for each part (synthetic, synthetic validation where the layout has
one, weak, unlabeled, validation, public evaluation) read its metadata
(`sed.data.tsv`) at the paths of its layout (`sed.data.layouts`), check its
labels, times and durations, clip events that end a little past their clip
(`TIME_TOLERANCE_S`), and check that its audio exists and decodes -- the
private workers of `sed.data.desed.load_desed`, which assembles the splits.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from sed.data.errors import DatasetError
from sed.data.layouts import PartLayout
from sed.data.splits import META_COLUMNS, STRONG_COLUMNS, UNLABELED_COLUMNS, WEAK_COLUMNS, Event, Split
from sed.data.tsv import _read_tsv, _relative_audio, _time

log = logging.getLogger("sed.data.desed")

#: How far (seconds) an event may run past the clip end and still be accepted (then clipped to it).
#: The published DESED 2020 validation.tsv has four events ending 3 to 115 ms after their
#: 10 s clip end; 0.5 s accepts those with a wide margin while an offset one second or more
#: off (a typo, a clip of the wrong length) is still refused.
TIME_TOLERANCE_S: float = 0.5
#: Durations file looked for beside a part's metadata ``X.tsv``: ``X_durations.tsv``
#: (DESED 2021+: validation_durations.tsv, public_durations.tsv); a layout adds its own
#: candidates (the 2020 ``public_meta.tsv``, 2021+ ``durations.tsv`` of the synthetic sets).
DURATIONS_SUFFIX: str = "_durations.tsv"


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
    #: seconds per clip from a durations file; None = take the audio file's own length
    durations: list[float | None]
    #: metadata line of each event (parallel to ``events``), for the clip-end check
    event_lines: list[list[int]] | None = None
    #: the durations file the durations came from (None: the audio files)
    durations_file: Path | None = None


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


def durations_file(root: Path, layout: PartLayout) -> Path | None:
    """The durations TSV of a part, if the dataset has one: ``<metadata stem>_durations.tsv``
    (:data:`DURATIONS_SUFFIX`), then the layout's own candidates (e.g. ``public_meta.tsv``)."""
    candidates = []
    if layout.metadata is not None:
        metadata = root / layout.metadata
        candidates.append(metadata.with_name(metadata.stem + DURATIONS_SUFFIX))
    candidates += [root / c for c in layout.durations]
    return next((c for c in candidates if c.is_file()), None)


def _read_durations(path: Path, audio_dir: str) -> tuple[dict[str, float], dict[str, int], list[str]]:
    """``filename duration`` rows of a durations TSV: durations, first lines, order."""
    durations: dict[str, float] = {}
    lines: dict[str, int] = {}
    order: list[str] = []
    for row in _read_tsv(path, META_COLUMNS, "durations"):
        name = _relative_audio(path, row, audio_dir)
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
    return durations, lines, order


def _durations_of(
    path: Path | None, names: list[str], lines: list[int], durations: dict[str, float], metadata: Path
) -> list[float | None]:
    """Each clip's duration from its part's durations file (None everywhere without one)."""
    if path is None:
        return [None] * len(names)
    missing = [(n, line) for n, line in zip(names, lines) if n not in durations]
    if missing:
        name, line = missing[0]
        raise DatasetError(
            f"{metadata} line {line}: {name!r} has no duration in {path} ({len(missing)} such clips). "
            "Fix: add a row 'filename<TAB>duration' for it there, or remove that durations file to "
            "take every clip's length from its audio file."
        )
    return [durations[n] for n in names]


def _read_strong(
    root: Path, part: str, check_label: _LabelCheck, layout: PartLayout
) -> tuple[Path, list[str], list[int], dict[str, list[tuple[Event, int]]]]:
    """A strong TSV: each clip's events with their line (checked against the clip end later)."""
    assert layout.metadata is not None
    path = root / layout.metadata
    clips: dict[str, list[tuple[Event, int]]] = {}
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
        clips[name].append((Event(onset, offset, check_label(label, path, row.line)), row.line))
    for events in clips.values():
        events.sort(key=lambda item: (item[0].onset, item[0].offset, item[0].label))
    names = list(clips)
    return path, names, [first_line[n] for n in names], clips


def _read_weak(root: Path, check_label: _LabelCheck, layout: PartLayout) -> _Part:
    if layout.metadata is None:
        raise DatasetError("the weak part needs a metadata file (filename, event_labels). Fix: give its path.")
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
    return _with_durations(
        _Part("weak", path, root / layout.audio_dir, names, [lines[n] for n in names], None, labels, []),
        durations_file(root, layout),
        layout.audio_dir,
    )


#: Audio files an unlabeled folder without metadata is listed from.
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg")


def _listed_folder(root: Path, layout: PartLayout) -> _Part:
    """An unlabeled part without metadata: every audio file directly in its folder, sorted."""
    folder = root / layout.audio_dir
    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: unlabeled audio folder not found (the layout gives it no metadata file). "
            "Fix: restore the folder, or give the part's metadata in a layout file."
        )
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    return _with_durations(
        _Part("unlabeled", folder, folder, names, [0] * len(names), None, None, []),
        durations_file(root, layout),
        layout.audio_dir,
    )


def _read_unlabeled(root: Path, layout: PartLayout) -> _Part:
    if layout.metadata is None:
        return _listed_folder(root, layout)
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
    return _with_durations(
        _Part("unlabeled", path, root / layout.audio_dir, names, [lines[n] for n in names], None, None, []),
        durations_file(root, layout),
        layout.audio_dir,
    )


def _with_durations(part: _Part, path: Path | None, audio_dir: str) -> _Part:
    table = _read_durations(path, audio_dir)[0] if path is not None else {}
    part.durations = _durations_of(path, part.filenames, part.lines, table, part.metadata)
    part.durations_file = path
    return part


def _strong_part(
    name: str,
    root: Path,
    layout: PartLayout,
    path: Path,
    names: list[str],
    lines: list[int],
    clips: dict[str, list[tuple[Event, int]]],
    durations: list[float | None],
    durations_path: Path | None,
) -> _Part:
    events = [[event for event, _ in clips[n]] for n in names]
    event_lines = [[line for _, line in clips[n]] for n in names]
    weak = [sorted({e.label for e in clip}) for clip in events]
    return _Part(
        name,
        path,
        root / layout.audio_dir,
        names,
        lines,
        events,
        weak,
        durations,
        event_lines,
        durations_path,
    )


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
        None if part.event_lines is None else [part.event_lines[i] for i in keep],
        part.durations_file,
    )


def _fit_events(part: _Part, durations: list[float], sources: list[str]) -> tuple[list[list[Event]], int]:
    """Events clipped to their clip's end (within :data:`TIME_TOLERANCE_S`), and how many were changed.

    An event ending up to the tolerance after the clip end is cut at the end; one that then
    starts at or after the end is dropped (both counted). Further out is refused.
    """
    assert part.events is not None and part.event_lines is not None
    fitted: list[list[Event]] = []
    changed = 0
    for name, events, lines, end, source in zip(part.filenames, part.events, part.event_lines, durations, sources):
        kept: list[Event] = []
        for event, line in zip(events, lines):
            if event.offset > end + TIME_TOLERANCE_S:
                raise DatasetError(
                    f"{part.metadata} line {line}: event {event.label!r} of {name!r} ends at {event.offset} s, "
                    f"after the clip end ({end} s, {source}) by more than the {TIME_TOLERANCE_S:g} s "
                    "that is clipped. Fix: correct the offset (at most the clip duration), or the "
                    "clip's duration."
                )
            if event.offset > end:
                changed += 1
                if event.onset >= end:
                    continue
                event = Event(event.onset, end, event.label)
            kept.append(event)
        fitted.append(kept)
    return fitted, changed


# --------------------------------------------------------------------------- audio


def _audio_problem(path: Path) -> tuple[str | None, float]:
    """(None, seconds) when ``path`` is a readable audio file with samples, else (what is wrong, 0)."""
    if not path.is_file():
        return "missing", 0.0
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        return f"unreadable ({str(exc).strip() or type(exc).__name__})", 0.0
    if info.frames <= 0:
        return "empty (no samples)", 0.0
    if info.channels <= 0:
        return "has no channels", 0.0
    return None, info.frames / info.samplerate


def _check_audio(part: _Part, skip_missing_audio: bool) -> tuple[Split, int, int]:
    """The checked split, the clips dropped for missing audio, and the events clipped to a clip end."""
    paths = [_join(part.audio_dir, n) for n in part.filenames]
    checked = [_audio_problem(p) for p in paths]
    problems = [problem for problem, _ in checked]
    bad = [i for i, problem in enumerate(problems) if problem is not None]
    if bad and not skip_missing_audio:
        shown = "; ".join(
            f"{paths[i]} ({f'listed on line {part.lines[i]}' if part.lines[i] else 'found in the folder'}): "
            f"{problems[i]}"
            for i in bad[:5]
        )
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DatasetError(
            f"{part.metadata}: {len(bad)} of the {len(paths)} listed audio files missing or unreadable: "
            f"{shown}{more}. Fix: restore the audio under {part.audio_dir}/, remove those rows from the "
            "metadata, or load with skip_missing_audio=True to drop them (they are counted in missing_audio)."
        )
    keep = [i for i, problem in enumerate(problems) if problem is None]
    kept = _subset(part, part.name, keep)
    durations = [float(listed) if listed is not None else checked[i][1] for i, listed in zip(keep, kept.durations)]
    sources = [
        f"from {part.durations_file}" if listed is not None else f"the length of {paths[i]}"
        for i, listed in zip(keep, kept.durations)
    ]
    events, weak, clipped = kept.events, kept.weak_labels, 0
    if events is not None:
        events, clipped = _fit_events(kept, durations, sources)
        weak = [sorted({e.label for e in clip}) for clip in events]
    split = Split(
        name=part.name,
        filenames=kept.filenames,
        audio_paths=[paths[i] for i in keep],
        events=events,
        weak_labels=weak,
        durations=durations,
    )
    return split, len(bad), clipped


def _join(folder: Path, name: str) -> Path:
    return folder / posixpath.normpath(name.replace("\\", "/"))
