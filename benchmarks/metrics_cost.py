"""Cost of the validation metrics: event F1 (sed_eval) and PSDS (psds_eval).

Decides whether per-epoch validation inside the search can afford PSDS.
Predictions are plausible, not random noise: DESED-like references (Poisson
3.6 events drawn per clip, 0.3-10 s long, about 3.3 per clip once same-class
overlaps are merged) and predictions = the reference frame targets, blurred in time, scaled
and mixed with smooth noise in logit space, so that event F1 at 0.5 lands near
0.4 as for real systems and the number of detections per threshold is realistic
(PSDS cost grows with the number of detected events).

Usage:
    python benchmarks/metrics_cost.py                 # 100 and 400 files
    python benchmarks/metrics_cost.py --files 100 400 1168 --repeats 3   # 1168 = DESED validation
Prints a Markdown table (paste into benchmarks/README.md, section "Metric cost").
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d, median_filter

from sed.constants import DESED_CLASSES, FRAME_STEP_S, N_OUT_FRAMES  # noqa: E402
from sed.eval.metrics import event_f1, metric_versions, psds_scores, psds_thresholds  # noqa: E402
from sed.eval.postprocess import decode_events, median_filter_time  # noqa: E402


def make_case(n_files: int, seed: int = 0) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """DESED-like reference events and smooth, imperfect frame probabilities."""
    rng = np.random.default_rng(seed)
    n_classes = len(DESED_CLASSES)
    names = [f"clip_{i:05d}.wav" for i in range(n_files)]
    target = np.zeros((n_files, N_OUT_FRAMES, n_classes), dtype=np.float32)
    rows = []
    for f in range(n_files):
        for _ in range(rng.poisson(3.6)):
            c = int(rng.integers(n_classes))
            length = int(np.clip(rng.lognormal(np.log(25), 0.9), 5, N_OUT_FRAMES))  # ~1.6 s median
            start = int(rng.integers(0, N_OUT_FRAMES - length + 1))
            target[f, start : start + length, c] = 1.0
    for f in range(n_files):  # reference = runs of the target (overlaps merged by construction)
        for c in range(n_classes):
            col = np.concatenate([[0.0], target[f, :, c], [0.0]])
            edges = np.diff(col)
            for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                rows.append((names[f], s * FRAME_STEP_S, min(e * FRAME_STEP_S, 10.0), DESED_CLASSES[c]))
    reference = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    # Logits: confident background (sigmoid(-4.5) = 0.011), blurred event edges and
    # smooth noise of unit std x 1.7 (correlated over ~5 frames): about 1.4 detections
    # per reference event at 0.5 and macro F1 near 0.4 (the 2020 baseline: 0.35).
    blurred = gaussian_filter1d(target, sigma=2.0, axis=1)
    noise = gaussian_filter1d(rng.normal(size=target.shape), sigma=5.0, axis=1)
    noise /= noise.std()
    logits = -4.5 + 6.0 * blurred + 1.7 * noise
    probs = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return probs, names, reference


class Timing:
    """Median wall and CPU (this process) seconds; CPU time resists a loaded machine."""

    def __init__(self, wall: list[float], cpu: list[float]) -> None:
        self.wall = statistics.median(wall)
        self.cpu = statistics.median(cpu)

    def __format__(self, spec: str) -> str:
        return f"{self.wall:{spec}} / {self.cpu:{spec}}"


def timed(fn: Callable[[], object], repeats: int) -> tuple[Timing, object]:
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return Timing(wall, cpu), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="+", default=[100, 400])
    parser.add_argument(
        "--repeats", type=int, default=3, help="median of this many runs (PSDS with 50 thresholds: 1 run)"
    )
    args = parser.parse_args()

    labels = list(DESED_CLASSES)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in metric_versions().items()))

    # Warm-up: the first call imports sed_eval/dcase_util and psds_eval (about 1 s), which a
    # trainer pays once per process, not per epoch.
    warm_probs, warm_names, warm_ref = make_case(5, seed=2)
    event_f1(warm_ref, decode_events(warm_probs, warm_names, labels), warm_names, labels)
    psds_scores(warm_probs, warm_names, labels, warm_ref, None, n_thresholds=2)

    probs_1000, names_1000, _ = make_case(1000, seed=1)
    t_decode, ev = timed(lambda: decode_events(probs_1000, names_1000, labels), args.repeats)
    print(
        f"decode_events 1000 files x 157 x 10 (window 7): {t_decode.wall * 1000:.0f} ms wall, "
        f"{t_decode.cpu * 1000:.0f} ms CPU, {len(ev)} events"
    )

    # The median filter of decode_events: the counting filter (sed.eval.postprocess) against
    # scipy.ndimage.median_filter, which it replaced, on the same thresholded frames.
    active = probs_1000 >= 0.5
    for window in (7, 11):
        t_scipy, ref_active = timed(lambda: median_filter(active, size=(1, window, 1)), args.repeats)
        t_count, got_active = timed(lambda: median_filter_time(active, window), args.repeats)
        assert np.array_equal(ref_active, got_active)
        print(
            f"median filter 1000 files x 157 x 10, window {window}: scipy {t_scipy.cpu * 1000:.0f} ms CPU, "
            f"counting {t_count.cpu * 1000:.0f} ms CPU ({t_scipy.cpu / t_count.cpu:.1f}x), same values"
        )

    print(f"load average before the runs: {os.getloadavg()[0]:.2f}")
    print()
    print("Times: wall / CPU seconds (median).")
    print(
        "| files | ref events | events @0.5 | decode + F1 (s) | macro F1 | PSDS 10 thr, psds only (s) "
        "| PSDS 10 thr, 3 variants (s) | PSDS 50 thr, 3 variants (s) | detections over 50 thr "
        "| PSDS (10) | PSDS (50) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.files:
        probs, names, reference = make_case(n)
        durations = [10.0] * n

        def f1() -> dict:
            est = decode_events(probs, names, labels)
            return event_f1(reference, est, names, labels)

        def psds(n_thresholds: int, variants: list[str] | None = None) -> dict:
            return psds_scores(probs, names, labels, reference, durations, n_thresholds=n_thresholds, variants=variants)

        t_f1, f1_result = timed(f1, args.repeats)
        n_est = len(decode_events(probs, names, labels))
        t_p10_one, _ = timed(lambda: psds(10, ["psds"]), args.repeats)
        t_p10, p10 = timed(lambda: psds(10), args.repeats)
        t_p50, p50 = timed(lambda: psds(50), 1)
        n_det = sum(len(decode_events(probs, names, labels, threshold=t)) for t in psds_thresholds(50))
        print(
            f"| {n} | {len(reference)} | {n_est} | {t_f1:.2f} | {f1_result['macro_f1']:.3f} "
            f"| {t_p10_one:.1f} | {t_p10:.1f} | {t_p50:.1f} | {n_det} | {p10['psds']:.3f} "
            f"| {p50['psds']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
