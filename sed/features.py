"""Log-mel features of the DCASE 2020 task 4 baseline, their on-disk cache and the per-band scaler.

Recipe (BASELINE.md, Features): 16 kHz mono, STFT with a 2048-sample
*symmetric* Hamming window (``periodic=False``), hop 255, centred with reflect
padding; **amplitude** (power 1) mel spectrogram with 128 Slaney-scale bands
over 0-8000 Hz and unnormalised triangular filters; amplitude-to-dB with
ref 1.0, amin 1e-5 and top_db 80 relative to *each clip's own* maximum;
padded / truncated to 628 frames (ceil(10 s * 16000 / 255)). The values match
``librosa.amplitude_to_db(librosa.feature.melspectrogram(...))`` of the same
recipe (checked in tests/test_features.py).

torchaudio's ``AmplitudeToDB`` is *not* used: for a 3-D input [B, mel, time]
it takes the top_db reference maximum over the whole batch (it reshapes to
[-1, C, F, T] and treats B as channels), which would make one clip's floor
depend on the other clips in its batch. :class:`LogMel` takes the maximum per
clip explicitly.

The cache (:class:`FeatureStore`) holds one ``.npy`` array [N, 628, 128]
float32 per (split content, feature config, code version), opened as a
read-only memory map and shared by every trial on the machine (DESIGN.md,
Features: computed once, never per trial or per epoch).

Per-band normalisation (BASELINE.md, Features: mean and std per mel bin over
the training data) is :class:`Scaler` / :func:`fit_scaler`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torchaudio.transforms import MelSpectrogram

from sed.constants import CLIP_SECONDS, HOP, N_FFT, N_FRAMES, N_MELS, SAMPLE_RATE
from sed.data.audio import read_audio
from sed.data.errors import DatasetError

__all__ = [
    "AMIN",
    "FEATURE_CODE_VERSION",
    "FeatureConfig",
    "FeatureStore",
    "LogMel",
    "Scaler",
    "SplitLike",
    "default_cache_root",
    "fit_scaler",
]

#: Floor of the mel amplitude before the log (BASELINE.md: amin 1e-5), i.e. -100 dB.
AMIN: float = 1e-5
#: Reference amplitude of the dB conversion (BASELINE.md: ref 1.0, so dB = 20 log10(max(amin, S))).
REF: float = 1.0

#: Part of every cache key. Bump it whenever read_audio or LogMel would produce different
#: numbers for the same FeatureConfig and audio, so that old caches stop matching.
#: It also stands for the fixed parts of the recipe that are not FeatureConfig fields:
#: symmetric Hamming window, power 1, Slaney scale, no filter norm, ref 1, amin 1e-5,
#: centred reflect-padded STFT, soundfile decoding + mean downmix + torchaudio resampling,
#: zero-padding of the waveform to clip_seconds.
FEATURE_CODE_VERSION: str = "logmel-v1"


# ----------------------------------------------------------------------------- configuration


_INT_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_mels", "n_frames")
_FLOAT_FIELDS = ("f_min", "f_max", "top_db", "clip_seconds")


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the log-mel features; the defaults are the 2020 baseline's (BASELINE.md).

    ``top_db=None`` disables the per-clip floor. Values are normalised to
    int / float on construction, so ``FeatureConfig(f_max=8000)`` equals
    (and has the same :meth:`key` as) ``FeatureConfig()``.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP
    n_mels: int = N_MELS
    f_min: float = 0.0
    f_max: float = 8000.0
    top_db: float | None = 80.0
    n_frames: int = N_FRAMES
    clip_seconds: float = CLIP_SECONDS

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"FeatureConfig.{name} must be a positive integer, got {value!r}.")
            object.__setattr__(self, name, int(value))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if name == "top_db" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
                raise ValueError(f"FeatureConfig.{name} must be a finite number, got {value!r}.")
            object.__setattr__(self, name, float(value))
        nyquist = self.sample_rate / 2
        if not 0.0 <= self.f_min < self.f_max <= nyquist:
            raise ValueError(
                f"FeatureConfig.f_min/f_max must satisfy 0 <= f_min < f_max <= sample_rate/2 = {nyquist:g} Hz, "
                f"got f_min={self.f_min:g}, f_max={self.f_max:g}. Fix: lower f_max or raise sample_rate."
            )
        if self.top_db is not None and self.top_db <= 0:
            raise ValueError(f"FeatureConfig.top_db must be positive (or None for no floor), got {self.top_db}.")
        if self.clip_seconds <= 0:
            raise ValueError(f"FeatureConfig.clip_seconds must be positive, got {self.clip_seconds}.")
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"FeatureConfig.hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft}); "
                "frames would skip samples."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused with their name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"FeatureConfig: unknown key(s) {unknown}; known keys are {sorted(known)}.")
        return cls(**values)

    def key(self) -> str:
        """Stable 16-hex-digit hash of the fields (independent of Python's hash seed)."""
        text = json.dumps({"FeatureConfig": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @property
    def clip_samples(self) -> int:
        """Samples per clip after padding/cutting: round(sample_rate * clip_seconds)."""
        return int(round(self.sample_rate * self.clip_seconds))


# ----------------------------------------------------------------------------- log-mel module


class LogMel(torch.nn.Module):
    """Waveforms [B, T] (or [T]) -> log-mel [B, n_frames, n_mels] in dB (time first, mel last).

    torchaudio ``MelSpectrogram`` with the baseline's settings, then
    ``20 log10(max(S, 1e-5))`` (ref 1.0), then ``max(dB, max_clip(dB) - top_db)``
    per clip, then pad/truncate the time axis to ``n_frames``. Frames added
    by padding take the value silence would have had (``max(-100 dB,
    clip max - top_db)``). Runs on whatever device the module and input are on.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else FeatureConfig()
        cfg = self.config
        self.mel = MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.n_fft,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            window_fn=torch.hamming_window,
            wkwargs={"periodic": False},
            power=1.0,
            mel_scale="slaney",
            norm=None,
            center=True,
            pad_mode="reflect",
        )
        self.silence_db = 20.0 * math.log10(AMIN) - 20.0 * math.log10(max(AMIN, REF))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"LogMel expects waveforms [batch, samples] or [samples], got shape {tuple(wave.shape)}.")
        amplitude = self.mel(wave.float())  # [B, n_mels, T]
        decibels = 20.0 * torch.log10(torch.clamp(amplitude, min=AMIN)) - 20.0 * math.log10(max(AMIN, REF))
        floor = torch.full((decibels.shape[0], 1, 1), self.silence_db, dtype=decibels.dtype, device=decibels.device)
        if self.config.top_db is not None:
            clip_max = decibels.amax(dim=(1, 2), keepdim=True)
            floor = torch.maximum(floor, clip_max - self.config.top_db)
            decibels = torch.maximum(decibels, floor)
        frames = decibels.transpose(1, 2)  # [B, T, n_mels]
        n_frames = self.config.n_frames
        if frames.shape[1] > n_frames:
            frames = frames[:, :n_frames]
        elif frames.shape[1] < n_frames:
            pad = floor.expand(frames.shape[0], n_frames - frames.shape[1], frames.shape[2])
            frames = torch.cat([frames, pad], dim=1)
        return frames.contiguous()


# ----------------------------------------------------------------------------- cache


class SplitLike(Protocol):
    """What the cache needs of a split (``sed.data.desed.Split`` has it)."""

    name: str
    filenames: list[str]
    audio_paths: list[Path]


def default_cache_root() -> Path:
    """``$SEDTUNE_CACHE`` if set, else ``~/.cache/sedtune`` (shared with ``sed.data.synth``)."""
    env = os.environ.get("SEDTUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sedtune"


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


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[float]:
    """Hold an fcntl (flock) exclusive lock on ``lock_path``; yields the seconds spent waiting.

    flock is per open file description and released by the kernel when the
    process dies, so a crashed builder never leaves the key locked. Lock files
    are never deleted (deleting them would let two processes lock different
    inodes of the same name).
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.perf_counter()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[sedtune features] waiting for another process building {lock_path.stem} ...", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.perf_counter() - start
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FeatureStore:
    """On-disk, machine-wide cache of log-mel features, one memory-mapped array per split content.

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

    Args:
        cache_dir: the folder that holds the feature files themselves; default
            ``default_cache_root() / "features"`` (``$SEDTUNE_CACHE/features``
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
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "features"
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
        with _exclusive_lock(self.root / f"{key}.lock") as waited:
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
        tmp_sidecar = self.root / f"{key}.tmp-{os.getpid()}.json"
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
                self._compute_into(output, split, config, progress)
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
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "torch": torch.__version__,
                "device": str(self.device),
                "filenames": list(split.filenames),
            }
            with open(tmp_sidecar, "w") as handle:
                json.dump(meta, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_sidecar, self._sidecar(key))
            os.replace(tmp_array, self.path(key))
            _fsync_dir(self.root)
        finally:
            for leftover in (tmp_array, tmp_sidecar):
                try:
                    leftover.unlink()
                except FileNotFoundError:
                    pass

    def _compute_into(self, output: np.ndarray, split: SplitLike, config: FeatureConfig, progress: bool) -> None:
        """Fill ``output`` clip by clip, in file order, with worker threads.

        CPU: each worker decodes one clip and computes its log-mel with torch
        limited to one intra-op thread for the duration of the build (parallel
        over clips instead of inside each FFT: on a busy 2-core machine the
        OpenMP pool made resampling and the STFT 5-10x slower, see
        benchmarks/README.md). CUDA: workers decode, the main thread computes
        batches of ``batch_size`` clips on the device. At most a bounded number
        of clips are in flight, so memory does not grow with the split.
        """
        module = LogMel(config).to(self.device).eval()
        paths = list(split.audio_paths)
        n_clips = len(paths)
        on_cpu = self.device.type == "cpu"
        workers = max(1, self.decode_workers if self.decode_workers is not None else torch.get_num_threads())
        in_flight = max(2 * workers, 2 * self.batch_size)
        reporter = _Progress(split.name, n_clips, progress)

        def decode(index: int) -> np.ndarray:
            return read_audio(paths[index], config.sample_rate, config.clip_seconds)

        def decode_and_compute(index: int) -> np.ndarray:
            wave = torch.from_numpy(decode(index))
            with torch.no_grad():
                return module(wave.unsqueeze(0))[0].numpy()

        task = decode_and_compute if on_cpu else decode
        previous_threads = torch.get_num_threads()
        if on_cpu:
            torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=workers) as executor:
                pending: deque[Future[np.ndarray]] = deque()
                next_index = 0
                waves: list[np.ndarray] = []
                try:
                    for index in range(n_clips):
                        while next_index < n_clips and len(pending) < in_flight:
                            pending.append(executor.submit(task, next_index))
                            next_index += 1
                        result = pending.popleft().result()
                        if on_cpu:
                            output[index] = result
                            reporter.update(index + 1)
                            continue
                        waves.append(result)
                        if len(waves) == self.batch_size or index == n_clips - 1:
                            with torch.no_grad():
                                batch = module(torch.from_numpy(np.stack(waves)).to(self.device))
                            output[index + 1 - len(waves) : index + 1] = batch.cpu().numpy()
                            waves = []
                            reporter.update(index + 1)
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
        finally:
            if on_cpu:
                torch.set_num_threads(previous_threads)


class _Progress:
    """Progress lines on stderr at every 10 % of the clips, with clips/s and the time left."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self.tenths = 1  # next report at ceil(tenths * total / 10) clips
        self.start = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled or done < math.ceil(self.tenths * self.total / 10):
            return
        while self.tenths <= 10 and done >= math.ceil(self.tenths * self.total / 10):
            self.tenths += 1
        elapsed = time.perf_counter() - self.start
        rate = done / max(elapsed, 1e-9)
        print(
            f"[sedtune features] {self.name}: {done}/{self.total} clips ({100 * done / self.total:.0f} %), "
            f"{rate:.1f} clips/s, {elapsed:.0f} s elapsed, eta {(self.total - done) / max(rate, 1e-9):.0f} s",
            file=sys.stderr,
            flush=True,
        )


# ----------------------------------------------------------------------------- scaler


@dataclass(eq=False)
class Scaler:
    """Per-mel-band standardisation ``(x - mean) / std`` (BASELINE.md, Features: normalisation).

    ``mean`` and ``std`` have one value per mel band; :meth:`transform`
    broadcasts them over the last axis of numpy arrays or torch tensors (on
    the tensor's device and dtype).
    """

    mean: np.ndarray
    std: np.ndarray
    _torch_cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape or self.mean.size == 0:
            raise ValueError(
                f"Scaler: mean and std must be non-empty vectors of equal length (one per mel band), "
                f"got {self.mean.shape} and {self.std.shape}."
            )
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()) or (self.std <= 0).any():
            raise ValueError("Scaler: mean must be finite and std finite and > 0 in every band. Refit the scaler.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scaler):
            return NotImplemented
        return bool(np.array_equal(self.mean, other.mean) and np.array_equal(self.std, other.std))

    @property
    def n_mels(self) -> int:
        return int(self.mean.size)

    def _check(self, last: int) -> None:
        if last != self.n_mels:
            raise ValueError(f"Scaler: input has {last} values on its last axis, the scaler has {self.n_mels} bands.")

    def _torch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cache_key = (str(x.device), x.dtype)
        if cache_key not in self._torch_cache:
            self._torch_cache[cache_key] = (
                torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                torch.as_tensor(self.std, dtype=x.dtype, device=x.device),
            )
        return self._torch_cache[cache_key]

    def transform(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """``(x - mean) / std`` over the last axis; keeps float32 as float32 (numpy and torch)."""
        if isinstance(x, torch.Tensor):
            self._check(x.shape[-1])
            if not x.is_floating_point():
                x = x.float()
            mean, std = self._torch_stats(x)
            return (x - mean) / std
        array = np.asarray(x)
        self._check(array.shape[-1])
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float32)
        return (array.astype(dtype, copy=False) - self.mean.astype(dtype)) / self.std.astype(dtype)

    def inverse_transform(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """``x * std + mean`` over the last axis."""
        if isinstance(x, torch.Tensor):
            self._check(x.shape[-1])
            mean, std = self._torch_stats(x)
            return x * std + mean
        array = np.asarray(x)
        self._check(array.shape[-1])
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float32)
        return array.astype(dtype, copy=False) * self.std.astype(dtype) + self.mean.astype(dtype)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-serialisable form (float64 values, exact round trip)."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Scaler:
        """Inverse of :meth:`to_dict`; refuses missing keys by name."""
        missing = [name for name in ("mean", "std") if name not in values]
        if missing:
            raise ValueError(f"Scaler.from_dict: missing key(s) {missing}; expected 'mean' and 'std' lists.")
        return cls(mean=np.asarray(values["mean"]), std=np.asarray(values["std"]))


def fit_scaler(
    arrays: Sequence[np.ndarray],
    chunk_rows: int = 1 << 16,
    min_std: float = 1e-5,
) -> Scaler:
    """Mean and (population) std per mel band over all frames of all clips of all ``arrays``.

    Each array is [..., n_mels] (typically a memmap [N, 628, 128] from
    :class:`FeatureStore`). It is streamed in chunks of ``chunk_rows`` frames
    with float64 accumulators merged by Chan et al.'s pairwise formula, so the
    memory use is one chunk regardless of the data size. ``std`` is floored at
    ``min_std`` so that a constant band cannot divide by zero.
    """
    if len(arrays) == 0:
        raise ValueError("fit_scaler: no arrays given; pass the training features (weak, unlabeled, synthetic).")
    n_mels = int(np.shape(arrays[0])[-1])
    count = 0
    mean = np.zeros(n_mels, dtype=np.float64)
    m2 = np.zeros(n_mels, dtype=np.float64)
    for index, array in enumerate(arrays):
        if np.shape(array)[-1] != n_mels:
            raise ValueError(
                f"fit_scaler: array {index} has {np.shape(array)[-1]} mel bands, array 0 has {n_mels}; "
                "all arrays must come from the same FeatureConfig."
            )
        rows = np.asarray(array).reshape(-1, n_mels)  # a view for C-contiguous memmaps: nothing is read yet
        for begin in range(0, rows.shape[0], chunk_rows):
            chunk = np.asarray(rows[begin : begin + chunk_rows], dtype=np.float64)
            if not np.isfinite(chunk).all():
                raise ValueError(
                    f"fit_scaler: array {index} contains NaN/inf in rows {begin}..{begin + chunk.shape[0] - 1}; "
                    "rebuild its features (delete the cache entry)."
                )
            n_chunk = chunk.shape[0]
            chunk_mean = chunk.mean(axis=0)
            chunk_m2 = ((chunk - chunk_mean) ** 2).sum(axis=0)
            total = count + n_chunk
            delta = chunk_mean - mean
            mean = mean + delta * (n_chunk / total)
            m2 = m2 + chunk_m2 + delta**2 * (count * n_chunk / total)
            count = total
    if count == 0:
        raise ValueError("fit_scaler: the arrays hold no frames; pass non-empty training features.")
    std = np.maximum(np.sqrt(m2 / count), min_std)
    return Scaler(mean=mean, std=std)
