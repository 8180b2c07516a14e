"""DESED-format data: metadata and splits (:mod:`sed.data.desed`), the embedded generator
(:mod:`sed.data.synth`).

The generator's names are imported lazily (on first use), so that
``python -m sed.data.synth`` does not find its module already imported.
"""

from __future__ import annotations

from typing import Any

from sed.data.desed import (
    DatasetError,
    DesedDataset,
    Event,
    Split,
    encode_strong,
    encode_weak,
    load_desed,
)

_SYNTH_NAMES = ("ensure_embedded", "generate_dataset", "embedded_dir", "SIZES", "CLASS_DURATIONS")

__all__ = [
    "DatasetError",
    "DesedDataset",
    "Event",
    "Split",
    "encode_strong",
    "encode_weak",
    "load_desed",
    *_SYNTH_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _SYNTH_NAMES:
        from sed.data import synth

        return getattr(synth, name)
    raise AttributeError(f"module 'sed.data' has no attribute {name!r}")
