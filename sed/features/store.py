"""The on-disk, machine-wide cache of log-mel features (`FeatureStore`).

One job: compute each split's log-mel features (`sed.features.logmel.LogMel`) once
per (split content, feature config, code version), store them as one
``.npy`` array [N, 628, 128] float32, and hand them out as read-only memory
maps shared by every trial on the machine (docs/design.md, Features:
computed once, never per trial or per epoch). Concurrent builders of one key
wait on `sed.cache.exclusive_lock`; a crashed build leaves nothing that
looks valid.

Layout: ``<cache_dir>/<key>.npy`` (float32 [N, n_frames, n_mels],
the split's file order) + ``<key>.json`` (sidecar: key, split name,
filenames, config, code version, shape, created) + ``<key>.lock``.

The key is sha256 over :data:`FEATURE_CODE_VERSION`, ``config.key()`` and,
for every clip in order, its filename (as in the metadata), size in bytes
and ``st_mtime_ns``. Content identity is taken from size + mtime, not from
hashing the audio: hashing 20k clips (~6 GB of DESED audio) would take
minutes on every run and on every trial, while a stat of all files takes
milliseconds; any rewrite of a file (re-download, re-export, ``touch``)
changes its mtime and so the key. The price: an in-place edit that keeps
both size and mtime (deliberately reset) would go unnoticed. Because the
absolute path is not part of the key, a dataset copied elsewhere with its
timestamps (``cp -p``, ``rsync -a``) keeps its cache. The device the
features were computed on is not part of the key either (CPU and CUDA
agree to float32 rounding: at most 0.009 dB apart on 1000 clips, H200);
the first builder wins.

Builds are atomic and run once per key: a builder takes an exclusive
``flock`` on ``<key>.lock`` (a second process, e.g. another Ray trial,
waits and then finds the finished array), deletes stale ``<key>.tmp-*``
leftovers of crashed builds (nobody else can be writing them while the
lock is held), writes ``<key>.tmp-<pid>.npy``, then the sidecar
(atomically), then ``os.replace``-s the array to ``<key>.npy``. Only that
final name counts, and only if the sidecar agrees with it (key,
filenames, shape) and the array opens with the expected shape and dtype;
anything else is rebuilt. Use a local directory: flock over NFS is not
reliable.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from sed.cache import cache_root, exclusive_lock
from sed.data.errors import DatasetError
from sed.features.compute import compute_into
from sed.features.logmel import FEATURE_CODE_VERSION, FeatureConfig
from sed.io import fsync_dir, write_json

__all__ = ["BuildStats", "FeatureStore", "SplitLike"]


class SplitLike(Protocol):
    """What the cache needs of a split (``sed.data.desed.Split`` has it)."""

    name: str
    filenames: list[str]
    audio_paths: list[Path]


@dataclass
class BuildStats:
    """What the last :meth:`FeatureStore.features` call did."""

    split: str
    key: str
    n_clips: int
    cache_hit: bool
    seconds: float
    clips_per_second: float | None = None
    waited_for_lock_seconds: float = 0.0


class FeatureStore:
    """On-disk, machine-wide cache of log-mel features, one memory-mapped array per split content.

    The layout, the key and the build protocol: the module docstring.

    Args:
        cache_dir: the folder that holds the feature files themselves; default
            ``cache_root() / "features"`` (``$SEDTUNE_CACHE/features``
            or ``~/.cache/sedtune/features``).
        batch_size: clips per device call when ``device`` is CUDA (on the CPU
            clips are computed one per worker thread).
        device: where the log-mel is computed while building (default CPU, so
            that a cache does not depend on which trial happened to build it).
        decode_workers: worker threads that decode (and, on the CPU, compute)
            clips; default ``torch.get_num_threads()`` at build time (inside a
            Ray trial that follows the trial's CPU count via OMP_NUM_THREADS).
            During a CPU build torch's intra-op threads are set to 1 and
            restored afterwards.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 16,
        device: str | torch.device = "cpu",
        decode_workers: int | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"FeatureStore: batch_size must be positive, got {batch_size}.")
        folder = Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "features"
        self.root: Path = folder.resolve()
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.decode_workers = decode_workers
        self.last_stats: BuildStats | None = None

    # -- keys and paths

    def key(self, split: SplitLike, config: FeatureConfig | None = None) -> str:
        """Cache key of ``split`` under ``config`` (stats every audio file; no decoding)."""
        config = config if config is not None else FeatureConfig()
        if len(split.filenames) != len(split.audio_paths):
            raise DatasetError(
                f"split {split.name!r}: {len(split.filenames)} filenames but {len(split.audio_paths)} audio paths. "
                "Fix: build the split with sed.data.desed.load_desed, which keeps them aligned."
            )
        digest = hashlib.sha256()
        digest.update(f"{FEATURE_CODE_VERSION}\0{config.key()}\0{len(split.filenames)}\0".encode())
        for filename, audio_path in zip(split.filenames, split.audio_paths):
            try:
                stat = os.stat(audio_path)
            except FileNotFoundError as error:
                raise DatasetError(
                    f"{audio_path}: audio file not found (split {split.name!r}, file {filename!r}). Fix: restore "
                    "the file, or load the dataset with skip_missing_audio=True to leave it out."
                ) from error
            except OSError as error:
                raise DatasetError(f"{audio_path}: cannot be read ({error}). Fix: check its permissions.") from error
            digest.update(f"{filename}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        """Final array path of a key."""
        return self.root / f"{key}.npy"

    def _sidecar(self, key: str) -> Path:
        return self.root / f"{key}.json"

    # -- main entry point

    def features(
        self,
        split: SplitLike,
        config: FeatureConfig | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """Features of every clip of ``split`` in its file order: read-only memmap [N, n_frames, n_mels] float32.

        Computed once per key (see the class docstring); a cache hit only
        stats the audio files and opens the memory map, it decodes nothing.
        Raises :class:`DatasetError` (naming the file) for missing or bad audio.
        """
        config = config if config is not None else FeatureConfig()
        start = time.perf_counter()
        key = self.key(split, config)
        n_clips = len(split.filenames)
        shape = (n_clips, config.n_frames, config.n_mels)
        if n_clips == 0:
            empty = np.zeros(shape, dtype=np.float32)
            empty.flags.writeable = False
            self.last_stats = BuildStats(split.name, key, 0, True, time.perf_counter() - start)
            return empty
        cached = self._open_valid(key, split, shape)
        if cached is not None:
            self.last_stats = BuildStats(split.name, key, n_clips, True, time.perf_counter() - start)
            return cached
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(
            self.root / f"{key}.lock", f"[sedtune features] waiting for another process building {key} ..."
        ) as waited:
            cached = self._open_valid(key, split, shape)
            if cached is not None:  # another process built it while we waited
                self.last_stats = BuildStats(split.name, key, n_clips, True, time.perf_counter() - start, None, waited)
                return cached
            self._remove_leftovers(key)
            build_start = time.perf_counter()
            self._build(key, split, config, shape, progress)
            build_seconds = time.perf_counter() - build_start
            result = self._open_valid(key, split, shape)
        if result is None:  # pragma: no cover - would mean the file system lost our write
            raise RuntimeError(f"feature cache {self.path(key)} was written but does not read back; check the disk.")
        self.last_stats = BuildStats(
            split.name, key, n_clips, False, time.perf_counter() - start, n_clips / max(build_seconds, 1e-9), waited
        )
        return result

    # -- internals

    def open(self, key: str, split: SplitLike, config: FeatureConfig | None = None) -> np.ndarray:
        """An entry already built, by its key, without statting the audio (a trial's read).

        The caller vouches that ``key`` is ``self.key(split, config)`` as the
        process that built it computed it (`sed.data.prepare.load_prepared`).
        Refuses a missing or mismatching entry, naming the fix.
        """
        config = config if config is not None else FeatureConfig()
        shape = (len(split.filenames), config.n_frames, config.n_mels)
        if shape[0] == 0:
            empty = np.zeros(shape, dtype=np.float32)
            empty.flags.writeable = False
            return empty
        array = self._open_valid(key, split, shape)
        if array is None:
            raise DatasetError(
                f"{self.path(key)}: the cached features of split {split.name!r} are missing or do not match. "
                "Fix: prepare the data again (python -m sed.train or search.run does it), or delete the "
                "prepared-data file that names this key."
            )
        return array

    def _open_valid(self, key: str, split: SplitLike, shape: tuple[int, int, int]) -> np.ndarray | None:
        """The final array of ``key`` if it and its sidecar are complete and agree, else None."""
        array_path, sidecar_path = self.path(key), self._sidecar(key)
        if not array_path.is_file() or not sidecar_path.is_file():
            return None
        try:
            meta = json.loads(sidecar_path.read_text())
            if (
                not isinstance(meta, dict)
                or meta.get("key") != key
                or meta.get("shape") != list(shape)
                or meta.get("code_version") != FEATURE_CODE_VERSION
                or meta.get("filenames") != list(split.filenames)
            ):
                return None
            array = np.load(array_path, mmap_mode="r", allow_pickle=False)
        except Exception:  # any unreadable / half-written / foreign file: not ours, rebuild
            return None
        if array.shape != shape or array.dtype != np.float32:
            return None
        return array

    def _remove_leftovers(self, key: str) -> None:
        """Delete ``<key>.tmp-*`` files of crashed builds (called with the key's lock held)."""
        for leftover in self.root.glob(f"{key}.tmp-*"):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass

    def _build(
        self,
        key: str,
        split: SplitLike,
        config: FeatureConfig,
        shape: tuple[int, int, int],
        progress: bool,
    ) -> None:
        n_clips = shape[0]
        tmp_array = self.root / f"{key}.tmp-{os.getpid()}.npy"
        if progress:
            print(
                f"[sedtune features] building {split.name!r}: {n_clips} clips -> {self.path(key)} "
                f"(config {config.key()}, device {self.device})",
                file=sys.stderr,
                flush=True,
            )
        try:
            output = np.lib.format.open_memmap(tmp_array, mode="w+", dtype=np.float32, shape=shape)
            try:
                compute_into(
                    output,
                    split.name,
                    list(split.audio_paths),
                    config,
                    self.device,
                    self.batch_size,
                    self.decode_workers,
                    progress,
                )
                output.flush()
            finally:
                del output
            with open(tmp_array, "rb+") as handle:
                os.fsync(handle.fileno())
            meta = {
                "key": key,
                "split": split.name,
                "code_version": FEATURE_CODE_VERSION,
                "config": config.to_dict(),
                "config_key": config.key(),
                "shape": list(shape),
                "dtype": "float32",
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "torch": torch.__version__,
                "device": str(self.device),
                "filenames": list(split.filenames),
            }
            write_json(self._sidecar(key), meta, indent=None, fsync=True)
            os.replace(tmp_array, self.path(key))
            fsync_dir(self.root)
        finally:
            for leftover in (tmp_array,):
                try:
                    leftover.unlink()
                except FileNotFoundError:
                    pass
