"""Feature-cache throughput: build time, clips/s and cache-hit time of sed.features.logmel.FeatureStore.

Writes N generated 10 s clips (band-limited noise + tones, no external data) to
a temporary folder, as 16 kHz mono PCM-16 WAV (the synthetic DESED format) and
/ or 44.1 kHz stereo PCM-16 WAV (real DESED recordings come at other rates and
are resampled), then times:

* build: the first ``FeatureStore.features`` call (decode + resample + log-mel +
  write), reported as seconds and clips/s, for each ``--devices`` x
  ``--decode-workers`` value (and, with two devices, their largest difference);
* hit: a second call from a fresh ``FeatureStore`` (stat every file + open the
  memory map, no decoding);
* read: touching every value of the memory map once (page-cache speed).

Usage::

    python benchmarks/feature_build.py --clips 200 --formats 16k-mono 44k-stereo --decode-workers 1 2
    python benchmarks/feature_build.py --clips 1000 --devices cpu cuda --decode-workers 16   # GPU machine

Prints one JSON object; copy the figures into benchmarks/README.md ("Feature build").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from sed.features.logmel import FeatureConfig  # noqa: E402
from sed.features.store import FeatureStore  # noqa: E402

FORMATS = {"16k-mono": (16000, 1), "44k-stereo": (44100, 2)}


@dataclass
class GeneratedSplit:
    name: str
    filenames: list[str]
    audio_paths: list[Path]


def write_clips(folder: Path, n_clips: int, rate: int, channels: int, seed: int = 0) -> GeneratedSplit:
    """N 10 s clips of coloured noise plus a few tones with random on/off times."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(rate * 10.0)
    t = np.arange(n) / rate
    names = []
    for index in range(n_clips):
        noise = np.cumsum(rng.standard_normal(n)) * 0.002
        noise -= np.convolve(noise, np.ones(256) / 256, mode="same")  # remove the drift: pinkish noise
        wave = 0.05 * noise / (np.abs(noise).max() + 1e-9)
        for _ in range(3):
            onset, duration = rng.uniform(0, 8), rng.uniform(0.3, 2.0)
            gate = (t >= onset) & (t < onset + duration)
            wave += gate * rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(100, 6000) * t)
        data = np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave
        name = f"clip_{index:05d}.wav"
        sf.write(folder / name, np.clip(data, -1, 1).astype(np.float32), rate, subtype="PCM_16")
        names.append(name)
    return GeneratedSplit(f"bench-{rate}-{channels}ch", names, [folder / name for name in names])


def time_format(
    split: GeneratedSplit, workdir: Path, devices: list[str], decode_workers: list[int], batch_size: int
) -> dict:
    config = FeatureConfig()
    result: dict = {"clips": len(split.filenames), "builds": []}
    built: dict[str, np.ndarray] = {}
    cache = workdir
    for device in devices:
        for workers in decode_workers:
            cache = workdir / f"cache-{device}-w{workers}"
            store = FeatureStore(cache, batch_size=batch_size, device=device, decode_workers=workers)
            start = time.perf_counter()
            built[device] = store.features(split, config, progress=False)
            seconds = time.perf_counter() - start
            result["builds"].append(
                {
                    "device": device,
                    "decode_workers": workers,
                    "seconds": round(seconds, 3),
                    "clips_per_s": round(len(split.filenames) / seconds, 1),
                }
            )
    if len(built) > 1:
        arrays = list(built.values())
        result["max_abs_diff_db_between_devices"] = float(np.abs(arrays[0] - arrays[1]).max())
    hit_store = FeatureStore(cache)
    hits = []
    for _ in range(5):
        start = time.perf_counter()
        features = hit_store.features(split, config, progress=False)
        hits.append(time.perf_counter() - start)
        assert hit_store.last_stats is not None and hit_store.last_stats.cache_hit
    start = time.perf_counter()
    total = float(np.asarray(features).sum(dtype=np.float64))
    read_seconds = time.perf_counter() - start
    result["hit_seconds_median"] = round(float(np.median(hits)), 5)
    result["read_all_seconds"] = round(read_seconds, 3)
    result["array_mb"] = round(features.nbytes / 2**20, 1)
    result["checksum"] = total
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--formats", nargs="+", choices=sorted(FORMATS), default=["16k-mono", "44k-stereo"])
    parser.add_argument("--decode-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=16, help="clips per device call (CUDA builds)")
    parser.add_argument("--devices", nargs="+", default=["cpu"], help="cpu and/or cuda; two devices are also compared")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, deleted afterwards")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sedtune-feature-bench-"))
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torchaudio": torchaudio.__version__,
            "soundfile": sf.__version__,
            "libsndfile": sf.__libsndfile_version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "batch_size": args.batch_size,
        "formats": {},
    }
    try:
        for name in args.formats:
            rate, channels = FORMATS[name]
            start = time.perf_counter()
            split = write_clips(workdir / name, args.clips, rate, channels)
            generated = time.perf_counter() - start
            timing = time_format(split, workdir / name, args.devices, args.decode_workers, args.batch_size)
            timing["generate_seconds"] = round(generated, 1)
            report["formats"][name] = timing
            print(f"{name}: {json.dumps(timing)}", file=sys.stderr, flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
