"""What a loaded DESED-format dataset is: events, splits, and their label encoding.

One job: the records `Event`, `Split` and `DesedDataset` that
`sed.data.desed.load_desed` returns, and the frame / clip targets a split
gives (`encode_strong`, `encode_weak`; docs/reference.md "Training" for the
reference's frame rounding). No file is read here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sed.constants import FRAME_STEP_S, N_OUT_FRAMES
from sed.data.errors import DatasetError

if TYPE_CHECKING:  # pandas is imported when a frame is asked for (it costs ~0.5 s to import)
    import pandas as pd

__all__ = [
    "DesedDataset",
    "Event",
    "META_COLUMNS",
    "SPLIT_NAMES",
    "STRONG_COLUMNS",
    "Split",
    "UNLABELED_COLUMNS",
    "WEAK_COLUMNS",
    "encode_strong",
    "encode_weak",
]

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

        rows = [(name, ev.onset, ev.offset, ev.label) for name, clip in zip(self.filenames, self.events) for ev in clip]
        frame = pd.DataFrame(rows, columns=list(STRONG_COLUMNS))
        return frame.astype({"filename": str, "onset": float, "offset": float, "event_label": str})


@dataclass
class DesedDataset:
    """All parts of one DESED-format dataset, checked.

    ``splits`` has the keys of :data:`SPLIT_NAMES`; ``missing_audio`` counts,
    per split, the clips dropped by ``skip_missing_audio=True`` (all 0 otherwise);
    ``clipped_events`` the events that ended past their clip end (within
    ``sed.data.parts.TIME_TOLERANCE_S``) and were clipped to it or, starting
    at or after it, dropped.
    """

    root: Path
    labels: tuple[str, ...]
    splits: dict[str, Split]
    missing_audio: dict[str, int] = field(default_factory=dict)
    clipped_events: dict[str, int] = field(default_factory=dict)
    #: the layout the dataset was read with (sed.data.layouts: desed2020, desed2021 or a file)
    layout: str = "desed2020"


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
    default, docs/reference.md "Post-processing"); an event marks frames
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
