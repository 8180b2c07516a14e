"""Where each part of a DESED dataset lives: the known layouts, their detection, layout files.

One job: map the parts (synthetic, optional synthetic_val, weak, unlabeled,
validation, public_eval) to their metadata, audio folder and durations files
under a dataset root. Known layouts:

* ``desed2020`` -- DCASE 2020 task 4 (docs/reference.md, "DESED metadata");
* ``desed2021`` -- the DESED_task recipes of DCASE 2021+ (their
  ``confs/default.yaml``): 16 kHz ``*_16k`` audio folders, the synthetic
  ``synthetic21_train`` set with its own ``synthetic21_validation`` set (the
  selection split, with ``durations.tsv``), ``validation_durations.tsv``; the
  public evaluation set under ``metadata/eval/public.tsv`` and
  ``audio/eval/public_16k`` (or ``public``) when the root has it, else from a
  layout file.

``resolve_layout(root, "auto")`` picks the layout whose synthetic metadata
exists under the root (2021+ first) and says what it looked for where when
none does. A layout file (YAML, ``--set layout=FILE``) maps parts to paths
(relative to the root, or absolute: a public-eval set in its own folder)::

    base: desed2021               # optional: start from a known layout
    public_eval:
      metadata: /data/desed_public_eval/metadata/eval/public.tsv
      audio: /data/desed_public_eval/audio/eval/public
      durations: /data/desed_public_eval/metadata/eval/public_durations.tsv
    unlabeled: {audio: audio/train/unlabel_in_domain_16k}   # no metadata: every audio file of the folder

Each part takes ``metadata`` (a TSV; optional for ``unlabeled`` only),
``audio`` (a folder) and ``durations`` (a ``filename duration`` TSV,
optional). Parts not named keep the base layout's paths.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sed.data.errors import DatasetError

__all__ = ["PartLayout", "LAYOUT", "LAYOUT_2021", "LAYOUTS", "PUBLIC_META", "PART_NAMES", "resolve_layout"]

#: Durations of the public evaluation clips in the 2020 layout.
PUBLIC_META: str = "metadata/eval/public_meta.tsv"
#: Parts a layout may name; every one but synthetic_val is required.
PART_NAMES: tuple[str, ...] = ("synthetic", "synthetic_val", "weak", "unlabeled", "validation", "public_eval")


@dataclass(frozen=True)
class PartLayout:
    """Where one DESED part lives under the dataset root (or at absolute paths)."""

    metadata: str | None  # the TSV; None: an unlabeled part listed from its audio folder
    audio_dir: str
    kind: str  # 'strong' | 'weak' | 'unlabeled'
    #: durations files looked for, first found wins (besides ``<metadata stem>_durations.tsv``)
    durations: tuple[str, ...] = ()


#: The DESED 2020 layout (docs/reference.md). Keys are the parts as the metadata has them.
LAYOUT: dict[str, PartLayout] = {
    "synthetic": PartLayout(
        "metadata/train/synthetic20/soundscapes.tsv", "audio/train/synthetic20/soundscapes", "strong"
    ),
    "weak": PartLayout("metadata/train/weak.tsv", "audio/train/weak", "weak"),
    "unlabeled": PartLayout("metadata/train/unlabel_in_domain.tsv", "audio/train/unlabel_in_domain", "unlabeled"),
    "validation": PartLayout("metadata/validation/validation.tsv", "audio/validation", "strong"),
    "public_eval": PartLayout(
        "metadata/eval/public.tsv", "audio/eval/public", "strong", ("metadata/eval/public_durations.tsv", PUBLIC_META)
    ),
}

#: The DESED_task (DCASE 2021+) layout.
LAYOUT_2021: dict[str, PartLayout] = {
    "synthetic": PartLayout(
        "metadata/train/synthetic21_train/soundscapes.tsv",
        "audio/train/synthetic21_train/soundscapes_16k",
        "strong",
        ("metadata/train/synthetic21_train/durations.tsv",),
    ),
    "synthetic_val": PartLayout(
        "metadata/validation/synthetic21_validation/soundscapes.tsv",
        "audio/validation/synthetic21_validation/soundscapes_16k",
        "strong",
        ("metadata/validation/synthetic21_validation/durations.tsv",),
    ),
    "weak": PartLayout("metadata/train/weak.tsv", "audio/train/weak_16k", "weak"),
    "unlabeled": PartLayout("metadata/train/unlabel_in_domain.tsv", "audio/train/unlabel_in_domain_16k", "unlabeled"),
    "validation": PartLayout(
        "metadata/validation/validation.tsv",
        "audio/validation/validation_16k",
        "strong",
        ("metadata/validation/validation_durations.tsv",),
    ),
    "public_eval": PartLayout(
        "metadata/eval/public.tsv",
        "audio/eval/public_16k",
        "strong",
        ("metadata/eval/public_durations.tsv", PUBLIC_META),
    ),
}

LAYOUTS: dict[str, dict[str, PartLayout]] = {"desed2021": LAYOUT_2021, "desed2020": LAYOUT}

_FIX = (
    "Fix: pass the folder that holds the DESED metadata/ and audio/ folders, or describe where each part "
    "lives in a layout file (--set layout=FILE, see sed/data/layouts.py)."
)


def _present(root: Path, layout: dict[str, PartLayout]) -> list[str]:
    """What a layout needs that is missing under ``root`` (relative paths as written)."""
    missing = []
    for name in ("synthetic", "weak", "unlabeled", "validation", "public_eval", "synthetic_val"):
        part = layout.get(name)
        if part is None:
            continue
        if part.metadata is not None and not (root / part.metadata).is_file():
            missing.append(part.metadata)
        elif part.metadata is None and not (root / part.audio_dir).is_dir():
            missing.append(part.audio_dir + "/")
    return missing


def _with_2021_public_audio(root: Path, layout: dict[str, PartLayout]) -> dict[str, PartLayout]:
    """The 2021+ public-eval audio folder: ``public_16k`` if present, else ``public``."""
    part = layout["public_eval"]
    if not (root / part.audio_dir).is_dir() and (root / "audio/eval/public").is_dir():
        layout = {**layout, "public_eval": replace(part, audio_dir="audio/eval/public")}
    return layout


def _unlabeled_folder_fallback(root: Path, layout: dict[str, PartLayout]) -> dict[str, PartLayout]:
    """The DESED_task recipes read the unlabeled set from its folder: no metadata is needed."""
    part = layout["unlabeled"]
    if part.metadata is not None and not (root / part.metadata).is_file() and (root / part.audio_dir).is_dir():
        layout = {**layout, "unlabeled": replace(part, metadata=None)}
    return layout


def resolve_layout(root: Path, layout: str = "auto") -> tuple[str, dict[str, PartLayout]]:
    """(name, parts) of the layout of ``root``: ``auto``, a known name, or a layout file's path."""
    if layout in LAYOUTS:
        parts = LAYOUTS[layout]
        if layout == "desed2021":
            parts = _unlabeled_folder_fallback(root, _with_2021_public_audio(root, parts))
        return layout, parts
    if layout != "auto":
        return str(layout), read_layout_file(Path(layout).expanduser(), root)
    for name in ("desed2021", "desed2020"):
        if (root / LAYOUTS[name]["synthetic"].metadata).is_file():  # type: ignore[operator]
            return resolve_layout(root, name)
    looked = "; ".join(f"{name}: {', '.join(_present(root, parts))}" for name, parts in LAYOUTS.items())
    raise DatasetError(f"{root}: no DESED layout found. Looked for (missing): {looked}. {_FIX}")


def read_layout_file(path: Path, root: Path) -> dict[str, PartLayout]:
    """A layout file's parts (module docstring); every problem names the file and the key."""
    import yaml

    if not path.is_file():
        raise DatasetError(
            f"layout {str(path)!r} is neither a known layout ({', '.join(['auto', *LAYOUTS])}) nor a file. "
            "Fix: give one of those names or the path of a layout YAML file."
        )
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"{path}: cannot read the layout file ({error}). Fix: write it as YAML.") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a layout file is a mapping of parts to paths. Fix: see sed/data/layouts.py.")
    base_name = data.pop("base", "desed2020")
    if base_name not in LAYOUTS:
        raise DatasetError(f"{path}: base {base_name!r} is not one of {list(LAYOUTS)}. Fix: use one of those.")
    parts = dict(resolve_layout(root, base_name)[1])
    for name, spec in data.items():
        if name not in PART_NAMES:
            raise DatasetError(f"{path}: unknown part {name!r}. Fix: name parts from {list(PART_NAMES)}.")
        if not isinstance(spec, dict):
            raise DatasetError(f"{path}: {name} must map metadata/audio/durations to paths.")
        unknown = sorted(set(spec) - {"metadata", "audio", "durations"})
        if unknown:
            raise DatasetError(f"{path}: {name}.{unknown[0]} is not a key. Fix: use metadata, audio, durations.")
        old = parts.get(name)
        kind = {"weak": "weak", "unlabeled": "unlabeled"}.get(name, "strong")
        metadata = spec.get("metadata", None if old is None else old.metadata)
        audio = spec.get("audio", None if old is None else old.audio_dir)
        if audio is None or (metadata is None and name != "unlabeled"):
            raise DatasetError(f"{path}: {name} needs {'audio' if audio is None else 'metadata'}. Fix: give its path.")
        durations = (str(spec["durations"]),) if spec.get("durations") else (old.durations if old else ())
        parts[name] = PartLayout(None if metadata is None else str(metadata), str(audio), kind, durations)
    return parts
