"""The DESED dataset (DCASE 2020 task 4, and the 2021+ DESED_task layout): metadata, audio, labels.

Where the parts live is a layout (sed.data.layouts: the 2020 and the 2021+
layouts, detected, or a layout file). The 2020 layout under the dataset root
(docs/reference.md, "DESED metadata"; the audio lies under ``audio/`` at the
same relative paths as the metadata):

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
  ``synthetic_val`` (the baseline's selection split, docs/reference.md "Training"),
  unless the layout has a synthetic validation set (2021+), which is then
  ``synthetic_val`` while the whole synthetic training set is ``synthetic_train``.
  A file's side is decided by a hash of ``split_seed`` and its file name
  alone, so it does not depend on row order or on which other files exist;
  the fraction is therefore ``val_fraction`` only in expectation.
* Public-eval clips listed in ``public_meta.tsv`` but absent from
  ``public.tsv`` are clips without events and are kept (with ``[]``).
* Durations: a part's durations file where it has one (``X_durations.tsv``
  beside its metadata ``X.tsv``; for the public evaluation set also the 2020
  ``public_meta.tsv``), which must then list every clip of the part; else
  each audio file's own length (``soundfile.info``: frames / sample rate).
  No part is assumed to be 10 s long: DESED's weak set has shorter clips and
  the public evaluation set an 11 s one.
* Events may end at most :data:`TIME_TOLERANCE_S` (0.5 s) after their clip
  end: they are clipped to it (an event that then starts at or after the end
  is dropped) and counted per split in ``DesedDataset.clipped_events`` (and a
  logged warning). The published validation.tsv has four events ending
  between 10.003 and 10.115 s. An event ending further out is refused with
  its file, line and the duration's source.
* Clips of any length are used the same way everywhere: features of the
  first 10 s (shorter clips padded with silence, sed.data.audio), frame
  targets of the events (no event lies past the clip end), and metrics with
  each clip's own duration (sed.eval.postprocess clips detections to it; the
  false-positive rate of PSDS counts it). Events of a longer clip after
  10 s are never seen by the model and count as missed, as in the reference.
* Same-class overlapping events are *not* refused (the shipped
  validation.tsv has 12 such pairs, docs/reference.md); the metrics merge them.
* ``audio_paths`` are the resolved dataset root joined with the lexically
  normalised file name (symbolic links below the root are not followed, so
  a symlinked audio folder works; ``..`` escapes are refused).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sed.constants import DESED_CLASSES
from sed.data.errors import DatasetError
from sed.data.layouts import LAYOUT, LAYOUT_2021, LAYOUTS, PUBLIC_META, resolve_layout
from sed.data.parts import (
    TIME_TOLERANCE_S,
    PartLayout,
    _check_audio,
    _durations_of,
    _LabelCheck,
    _Part,
    _read_durations,
    _read_strong,
    _read_unlabeled,
    _read_weak,
    _strong_part,
    _subset,
    durations_file,
)
from sed.data.splits import (
    META_COLUMNS,
    SPLIT_NAMES,
    STRONG_COLUMNS,
    UNLABELED_COLUMNS,
    WEAK_COLUMNS,
    DesedDataset,
    Event,
    Split,
    encode_strong,
    encode_weak,
)
from sed.data.tsv import _FIX_LAYOUT

if TYPE_CHECKING:  # pandas is imported when a frame is asked for (it costs ~0.5 s to import)
    pass

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
    "LAYOUT_2021",
    "LAYOUTS",
    "is_validation_file",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- split


def is_validation_file(filename: str, split_seed: int = 2020, val_fraction: float = 0.2) -> bool:
    """Whether a synthetic file goes to ``synthetic_val``: a hash of seed and name only."""
    digest = hashlib.sha256(f"{split_seed}\0{filename}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction


# --------------------------------------------------------------------------- entry point


def _labels_argument(labels: Sequence[str] | None) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        raise DatasetError(f"labels={labels!r} is a single string. Fix: pass a list of class names, or None.")
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
    layout: str = "auto",
) -> DesedDataset:
    """Read and check a DESED 2020 dataset under ``root`` (layout in the module docstring).

    ``labels``: a fixed label set (any other label is refused), or None: the ten
    DESED classes when every label found is one of them, else the sorted union.
    All metadata is checked first, then every listed audio file is opened with
    ``soundfile.info``; any problem raises :class:`DatasetError` naming the file
    (and line) and the fix. ``skip_missing_audio=True`` drops missing or
    unreadable clips instead, counts them per split in ``missing_audio`` and
    logs a warning. ``layout``: ``auto`` (detected, sed.data.layouts), ``desed2020``,
    ``desed2021`` or the path of a layout file. When the layout has a synthetic
    validation set (2021+), it is ``synthetic_val`` (the selection split) and
    the whole synthetic training set is ``synthetic_train``; else the synthetic
    set is split by :func:`is_validation_file`.
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
    layout_name, parts_layout = resolve_layout(root, layout)

    # Metadata first: every format problem is reported before any audio is touched.
    strong_names = [
        "synthetic",
        *(["synthetic_val"] if "synthetic_val" in parts_layout else []),
        "validation",
        "public_eval",
    ]
    read = {name: _read_strong(root, name, check_label, parts_layout[name]) for name in strong_names[:1]}
    weak = _read_weak(root, check_label, parts_layout["weak"])
    unlabeled = _read_unlabeled(root, parts_layout["unlabeled"])
    for name in strong_names[1:]:
        read[name] = _read_strong(root, name, check_label, parts_layout[name])
    strong: dict[str, _Part] = {}
    for part in strong_names:
        path, names, lines, clips = read[part]
        table_path = durations_file(root, parts_layout[part])
        table, table_lines, table_order = (
            _read_durations(table_path, parts_layout[part].audio_dir) if table_path is not None else ({}, {}, [])
        )
        if part == "public_eval":
            # Clips with a duration but no row in public.tsv are clips without events.
            listed = set(clips)
            for name in table_order:
                if name not in listed:
                    names.append(name)
                    lines.append(table_lines[name])
                    clips[name] = []
        durations = _durations_of(table_path, names, lines, table, path)
        strong[part] = _strong_part(part, root, parts_layout[part], path, names, lines, clips, durations, table_path)

    synthetic = strong["synthetic"]
    if "synthetic_val" in strong:  # the layout's own selection set (DESED 2021+)
        selection = [
            _subset(synthetic, "synthetic_train", list(range(len(synthetic.filenames)))),
            _subset(strong["synthetic_val"], "synthetic_val", list(range(len(strong["synthetic_val"].filenames)))),
        ]
    else:
        side = [is_validation_file(n, split_seed, val_fraction) for n in synthetic.filenames]
        selection = [
            _subset(synthetic, "synthetic_train", [i for i, v in enumerate(side) if not v]),
            _subset(synthetic, "synthetic_val", [i for i, v in enumerate(side) if v]),
        ]
    parts = [
        *selection,
        weak,
        unlabeled,
        strong["validation"],
        strong["public_eval"],
    ]
    for checked in parts:
        if not checked.filenames:
            _refuse_empty(checked, val_fraction, split_seed, dropped=0)

    splits: dict[str, Split] = {}
    missing: dict[str, int] = {}
    clipped: dict[str, int] = {}
    for checked in parts:
        split, dropped, n_clipped = _check_audio(checked, skip_missing_audio)
        if not split.filenames:
            _refuse_empty(checked, val_fraction, split_seed, dropped)
        splits[checked.name] = split
        missing[checked.name] = dropped
        clipped[checked.name] = n_clipped
    if any(missing.values()):
        log.warning(
            "skipped %d missing or unreadable audio files under %s (%s)",
            sum(missing.values()),
            root,
            ", ".join(f"{name}: {count}" for name, count in missing.items() if count),
        )
    if any(clipped.values()):
        log.warning(
            "clipped %d events that end at most %g s after their clip end to it (%s)",
            sum(clipped.values()),
            TIME_TOLERANCE_S,
            ", ".join(f"{name}: {count}" for name, count in clipped.items() if count),
        )

    fixed = check_label.fixed
    if fixed is not None:
        label_set = fixed
    elif check_label.seen <= set(DESED_CLASSES):
        label_set = DESED_CLASSES
    else:
        label_set = tuple(sorted(check_label.seen))
    return DesedDataset(
        root=root,
        labels=tuple(label_set),
        splits=splits,
        missing_audio=missing,
        clipped_events=clipped,
        layout=layout_name,
    )


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
