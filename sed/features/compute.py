"""Computing a split's log-mel features into an array, clip by clip, in file order.

The build step of `sed.features.store.FeatureStore` (which owns the cache, its keys, its
lock and its atomic files): worker threads decode the audio (and, on the CPU, compute
each clip's log-mel), progress lines go to stderr at every 10 % of the clips.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from sed.data.audio import read_audio
from sed.features.logmel import FeatureConfig, LogMel


def compute_into(
    output: np.ndarray,
    name: str,
    paths: list[Path],
    config: FeatureConfig,
    device: torch.device,
    batch_size: int,
    decode_workers: int | None,
    progress: bool,
) -> None:
    """Fill ``output`` clip by clip, in file order, with worker threads.

    CPU: each worker decodes one clip and computes its log-mel with torch
    limited to one intra-op thread for the duration of the build (parallel
    over clips instead of inside each FFT: on a busy 2-core machine the
    OpenMP pool made resampling and the STFT 5-10x slower, see
    benchmarks/README.md). CUDA: workers decode, the main thread computes
    batches of `batch_size` clips on the device. At most a bounded number
    of clips are in flight, so memory does not grow with the split.
    """
    module = LogMel(config).to(device).eval()
    n_clips = len(paths)
    on_cpu = device.type == "cpu"
    workers = max(1, decode_workers if decode_workers is not None else torch.get_num_threads())
    in_flight = max(2 * workers, 2 * batch_size)
    reporter = _Progress(name, n_clips, progress)

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
                    if len(waves) == batch_size or index == n_clips - 1:
                        with torch.no_grad():
                            batch = module(torch.from_numpy(np.stack(waves)).to(device))
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
