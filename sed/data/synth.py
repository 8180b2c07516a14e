"""A deterministic generator of a small DESED-like dataset (the "embedded" data).

It writes the DESED 2020 layout that :func:`sed.data.desed.load_desed` reads
(docs/reference.md, "DESED metadata"): 10 s, 16 kHz, mono, 16-bit WAV soundscapes
with strong (synthetic, validation, public eval), weak and unlabeled parts and
``public_meta.tsv`` durations, so every command works without a download.

The sounds themselves (ten procedural DESED-like classes over backgrounds)
are :mod:`sed.data.sounds`; this module writes, caches and serves datasets.

Every clip draws from its own random stream, ``SeedSequence(seed,
spawn_key=(part, index))``: the output is a function of (size, seed) only,
byte for byte, whatever the number of worker processes; the public
evaluation part has its own stream key, so no training clip is repeated
there. (Byte identity holds for one software stack and CPU family: numpy's
SIMD float32 sine may round differently on another CPU, by one unit in the
last place; such a change would move a few 16-bit samples by one step.)

Files are named ``syn_00000.wav``, ``weak_00000.wav``, ``unl_00000.wav``,
``val_00000.wav`` and ``eval_00000.wav`` (distinct across parts). The dataset
is generated into a temporary folder next to the target and renamed into
place; the marker file :data:`COMPLETE_MARKER` is written last.
:func:`ensure_embedded` keeps one copy per (size, seed) under
``<cache>/embedded/<size>-seed<seed>-v1`` and builds it under a file lock.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sed.cache import cache_root, exclusive_lock
from sed.constants import CLIP_SECONDS
from sed.data.desed import LAYOUT, PUBLIC_META, STRONG_COLUMNS, WEAK_COLUMNS, Event
from sed.data.domains import FAR_DOMAINS, GAP_DOMAINS, Domain
from sed.data.errors import DatasetError
from sed.data.sounds import CLASS_DURATIONS, SR, render_background, render_clip, render_event

__all__ = [
    "SIZES",
    "DOMAINS",
    "CLASS_DURATIONS",
    "GENERATOR_VERSION",
    "COMPLETE_MARKER",
    "PartSizes",
    "render_event",
    "render_background",
    "render_clip",
    "generate_dataset",
    "ensure_embedded",
    "embedded_dir",
    "cache_root",
    "main",
]

GENERATOR_VERSION: int = 1
#: Written last into a finished dataset folder (JSON: generator, version, size, seed, counts).
COMPLETE_MARKER: str = "sedtune_embedded.json"


@dataclass(frozen=True)
class PartSizes:
    """Clips per part."""

    synthetic: int
    weak: int
    unlabeled: int
    validation: int
    public_eval: int


#: Dataset sizes (clips per part). ``default`` is what the CLI and the trainer use without --data.
#: ``gap`` is DESED's regime in miniature (sed.data.domains): the clean synthetic part
#: (150; DESED 2020: 2584 training soundscapes) carries the strong labels, while the
#: weak (50; DESED 1578) and unlabeled (600; DESED 14412 in-domain) training clips and
#: the validation (100; DESED 1168) and public evaluation (100; DESED 692) clips are
#: "recorded": louder backgrounds, quieter events, a coloured response, level changes.
#: ``scarce`` is ``gap`` with 60 of its 200 labelled clips (its first 40 synthetic and 20
#: weak clips: a clip depends on (seed, part, index), not on the size) and the same 600
#: unlabeled ones, so that a supervised model over-fits its labels within a CPU budget.
#: ``scarce-eval400`` is ``scarce`` with 400 public evaluation clips instead of 100 (its first
#: 100 are scarce's; training and validation clips are the same): macro event F1 on 100 clips
#: varies by ~0.024 with the clips drawn (a bootstrap of one run), as much as the effects the
#: regime is for; DESED's public evaluation set has 692 clips.
#: ``scarce-far`` is ``scarce-eval400`` through a stronger recording chain (sed.data.domains,
#: ``FAR_DOMAINS``: +-16 dB bands instead of +-10): the same events in every clip, the same
#: clean synthetic clips; the spaces/demo.yaml regime, where FilterAugment's worst case beats
#: the no-augmentation control beyond seed noise.
SIZES: dict[str, PartSizes] = {
    "tiny": PartSizes(20, 8, 16, 8, 8),
    "small": PartSizes(160, 80, 160, 40, 40),
    "default": PartSizes(400, 200, 400, 100, 100),
    "gap": PartSizes(150, 50, 600, 100, 100),
    "scarce": PartSizes(40, 20, 600, 100, 100),
    "scarce-eval400": PartSizes(40, 20, 600, 100, 400),
    "scarce-far": PartSizes(40, 20, 600, 100, 400),
}
#: Each part's acoustic domain per size (a size or part not listed: the original generator).
DOMAINS: dict[str, dict[str, Domain]] = {
    "gap": GAP_DOMAINS,
    "scarce": GAP_DOMAINS,
    "scarce-eval400": GAP_DOMAINS,
    "scarce-far": FAR_DOMAINS,
}

# Stream keys of the parts: fixed numbers, so adding a part never changes another.
_PART_KEYS: dict[str, int] = {"synthetic": 1, "weak": 2, "unlabeled": 3, "validation": 4, "public_eval": 5}
_FILE_PREFIX: dict[str, str] = {
    "synthetic": "syn",
    "weak": "weak",
    "unlabeled": "unl",
    "validation": "val",
    "public_eval": "eval",
}
# --------------------------------------------------------------------------- dataset


def _clip_rng(seed: int, part: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_PART_KEYS[part], index)))


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit PCM WAV via soundfile, encoded in memory and written in one call (about 2x faster)."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, SR, subtype="PCM_16", format="WAV")
    path.write_bytes(buffer.getvalue())


def _write_tsv(path: Path, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _clip_name(part: str, index: int) -> str:
    return f"{_FILE_PREFIX[part]}_{index:05d}.wav"


_CHUNK = 25  # clips per task when generating in several processes


def _render_chunk(task: tuple[int, str, int, int, str, str]) -> list[list[Event]]:
    """Render and write clips ``start .. stop-1`` of one part; returns their events."""
    seed, part, start, stop, audio_dir, size = task
    domain = DOMAINS.get(size, {}).get(part)
    events: list[list[Event]] = []
    for index in range(start, stop):
        samples, clip_events = render_clip(_clip_rng(seed, part, index), domain)
        _write_wav(Path(audio_dir) / _clip_name(part, index), samples)
        events.append(clip_events)
    return events


def _build(out: Path, size: str, seed: int, workers: int | None = None) -> dict[str, int]:
    """Write every part into ``out`` (an empty folder). Returns clips per part.

    Clips are rendered in ``workers`` processes (default 1; spawned, so safe
    under threaded parents); each clip has its own random stream, so the bytes
    do not depend on the number of workers. Measured (benchmarks/README.md):
    two workers pay ~2 s of start-up each and only help on an idle machine.
    """
    sizes = SIZES[size]
    counts = {part: getattr(sizes, part) for part in LAYOUT}
    tasks: list[tuple[int, str, int, int, str, str]] = []
    for part, layout in LAYOUT.items():
        audio_dir = out / layout.audio_dir
        audio_dir.mkdir(parents=True, exist_ok=True)
        for start in range(0, counts[part], _CHUNK):
            tasks.append((seed, part, start, min(counts[part], start + _CHUNK), str(audio_dir), size))
    workers = 1 if workers is None else max(1, int(workers))
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            chunks = list(pool.map(_render_chunk, tasks))
    else:
        chunks = [_render_chunk(task) for task in tasks]
    events: dict[str, list[list[Event]]] = {part: [] for part in LAYOUT}
    for task, chunk in zip(tasks, chunks):
        events[task[1]].extend(chunk)

    for part, layout in LAYOUT.items():
        names = [_clip_name(part, index) for index in range(counts[part])]
        assert layout.metadata is not None  # the embedded layout lists every part in a TSV
        metadata = out / layout.metadata
        if layout.kind == "strong":
            rows: list[tuple[str, ...]] = [
                (name, f"{e.onset:.3f}", f"{e.offset:.3f}", e.label)
                for name, clip in zip(names, events[part])
                for e in clip
            ]
            _write_tsv(metadata, STRONG_COLUMNS, rows)
        elif layout.kind == "weak":
            rows = [(name, ",".join(sorted({e.label for e in clip}))) for name, clip in zip(names, events[part])]
            _write_tsv(metadata, WEAK_COLUMNS, rows)
        else:
            _write_tsv(metadata, ("filename",), [(name,) for name in names])
    eval_names = [_clip_name("public_eval", index) for index in range(counts["public_eval"])]
    _write_tsv(out / PUBLIC_META, ("filename", "duration"), [(n, f"{CLIP_SECONDS:.3f}") for n in eval_names])
    return counts


def _marker(size: str, seed: int, counts: dict[str, int] | None = None) -> dict:
    info: dict = {"generator": "sed.data.synth", "version": GENERATOR_VERSION, "size": size, "seed": seed}
    if counts is not None:
        info["counts"] = counts
    return info


def _is_complete(folder: Path, size: str, seed: int) -> bool:
    marker = folder / COMPLETE_MARKER
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all(info.get(k) == v for k, v in _marker(size, seed).items())


def _check_request(size: str, seed: int) -> None:
    if size not in SIZES:
        raise DatasetError(f"unknown embedded dataset size {size!r}. Fix: use one of {sorted(SIZES)}.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DatasetError(f"embedded dataset seed {seed!r} is not a non-negative integer. Fix: use e.g. 0.")


def generate_dataset(
    out: str | Path, size: str = "default", seed: int = 0, overwrite: bool = False, workers: int | None = None
) -> Path:
    """Generate the embedded dataset (``size``, ``seed``) into the folder ``out``; returns it.

    Written into a temporary sibling folder and renamed into place, with
    :data:`COMPLETE_MARKER` written last. A folder that already holds the same
    complete dataset is returned as it is; any other existing, non-empty
    ``out`` is refused unless ``overwrite``.
    """
    _check_request(size, seed)
    out = Path(out).expanduser().absolute()
    if out.exists():
        if _is_complete(out, size, seed):
            return out
        if not out.is_dir():
            raise DatasetError(f"{out} exists and is not a folder. Fix: choose another output folder.")
        if any(out.iterdir()) and not overwrite:
            raise DatasetError(
                f"{out} exists and is not the complete embedded dataset '{size}' seed {seed}. "
                "Fix: choose another (new or empty) output folder, or pass overwrite=True (--force)."
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        counts = _build(temporary, size, seed, workers)
        (temporary / COMPLETE_MARKER).write_text(
            json.dumps(_marker(size, seed, counts), indent=2) + "\n", encoding="utf-8"
        )
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, trash / "old")
            os.rename(temporary, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out


def embedded_dir(size: str = "default", seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """Where :func:`ensure_embedded` keeps the dataset: ``<cache>/embedded/<size>-seed<seed>-v1``."""
    return cache_root(cache_dir) / "embedded" / f"{size}-seed{seed}-v{GENERATOR_VERSION}"


def ensure_embedded(
    size: str = "default", seed: int = 0, cache_dir: str | Path | None = None, workers: int | None = None
) -> Path:
    """The root of the embedded dataset, built once per cache (file lock: one builder at a time)."""
    _check_request(size, seed)
    target = embedded_dir(size, seed, cache_dir).absolute()
    if _is_complete(target, size, seed):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        if _is_complete(target, size, seed):
            return target  # another process built it while we waited
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build
        print(
            f"sedtune: generating the embedded dataset '{size}' (seed {seed}) in {target} ...",
            end="",
            file=sys.stderr,
            flush=True,
        )
        started = time.perf_counter()
        generate_dataset(target, size, seed, overwrite=True, workers=workers)
        print(f" done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m sed.data.synth OUT [--size tiny|small|default|gap|scarce|scarce-eval400|scarce-far] [--seed N] [--force] [--workers N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m sed.data.synth",
        description=(
            "Generate the deterministic DESED-like embedded dataset (DESED 2020 layout: "
            "metadata/ and audio/) into OUT. Same size and seed give the same bytes."
        ),
    )
    parser.add_argument("out", metavar="OUT", type=Path, help="output folder (created; must be new or empty)")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="default",
        help="clips per part, synthetic/weak/unlabeled/validation/eval: "
        + "; ".join(f"{k} = {'/'.join(str(v) for v in vars(s).values())}" for k, s in SIZES.items()),
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it holds something else")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes to render with (default 1; 2 helps only on an idle 2-core machine); "
        "the output does not depend on it",
    )
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    started = time.perf_counter()
    print(
        f"sedtune: generating '{args.size}' (seed {args.seed}) into {args.out} ...", end="", file=sys.stderr, flush=True
    )
    try:
        out = generate_dataset(args.out, args.size, args.seed, overwrite=args.force, workers=args.workers)
    except DatasetError as exc:
        print(file=sys.stderr)
        parser.exit(2, f"error: {exc}\n")
    print(f" done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print(out)
    return 0


if __name__ == "__main__":
    # Run the imported module's main, so that worker processes pickle sed.data.synth functions, not __main__'s.
    from sed.data.synth import main as _main

    sys.exit(_main())
