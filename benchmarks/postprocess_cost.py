"""Cost of the second phase: per-class post-processing tuned on validation (sed.eval.pp_tuning), and of the
compute figures (MACs count, CodeCarbon start / read / stop).

The tuning reads a run's score files, so its cost grows with the number of
validation clips. The run given (a `python -m sed.train --out` folder) is used
as is, then scaled up to DESED's sizes (1168 validation, 692 public-eval
clips) by repeating its clips under new names (the same model's real scores and
references, n times): the cost of the sed_scores_eval passes and of sed_eval
depends on the clips and their events, not on where they come from.

Usage:
    python benchmarks/postprocess_cost.py RUN_DIR [--scale 1 12]
Prints CPU seconds (time.process_time: this process only, so a loaded machine's
waiting is not counted) and wall seconds per step; paste into benchmarks/README.md,
"Post-processing tuning and compute figures".
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd


def scaled_copy(run: Path, out: Path, factor: int) -> Path:
    """`run`'s validation/ and public_eval/ score files, each clip repeated `factor` times under new names."""
    for part in ("validation", "public_eval"):
        source, target = run / part, out / part
        (target / "scores" / "raw").mkdir(parents=True)
        durations = pd.read_csv(source / "durations.tsv", sep="\t")
        truth = pd.read_csv(source / "ground_truth.tsv", sep="\t")
        names, rows, events = [], [], []
        for copy in range(factor):
            for name, duration in zip(durations["filename"], durations["duration"], strict=True):
                stem, ext = name.rsplit(".", 1)
                new = f"{stem}_r{copy}.{ext}"
                shutil.copyfile(
                    source / "scores" / "raw" / f"{stem}.tsv", target / "scores" / "raw" / f"{stem}_r{copy}.tsv"
                )
                names.append(new)
                rows.append(duration)
            events.append(
                truth.assign(
                    filename=[f"{n.rsplit('.', 1)[0]}_r{copy}.{n.rsplit('.', 1)[1]}" for n in truth["filename"]]
                )
            )
        pd.DataFrame({"filename": names, "duration": rows}).to_csv(target / "durations.tsv", sep="\t", index=False)
        pd.concat(events).to_csv(target / "ground_truth.tsv", sep="\t", index=False)
    return out


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    print(f"| {label} | {time.process_time() - cpu:.2f} | {time.perf_counter() - wall:.2f} |", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 12])
    parser.add_argument("--median-window", type=int, default=11)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print("| step | CPU s | wall s |\n|---|---|---|")
    timed(
        "import sed.eval.pp_tuning + sed_scores_eval + sed_eval",
        lambda: __import__("sed_scores_eval") and __import__("sed_eval") and __import__("sed.eval.pp_tuning"),
    )
    from sed.eval.pp_tuning import apply, read_score_set, tune

    for factor in args.scale:
        with tempfile.TemporaryDirectory() as tmp:
            folder = scaled_copy(args.run, Path(tmp), factor)
            n_val = len(pd.read_csv(folder / "validation" / "durations.tsv", sep="\t"))
            n_eval = len(pd.read_csv(folder / "public_eval" / "durations.tsv", sep="\t"))
            validation = timed(f"read {n_val} validation clips", lambda: read_score_set(folder / "validation"))
            tuned = timed(
                f"tune on {n_val} clips (WINDOWS + the run's: F1, PSDS1; PSDS2 checked)",
                lambda: tune(validation, args.median_window, 0.5),
            )
            public = timed(f"read {n_eval} public-eval clips", lambda: read_score_set(folder / "public_eval"))
            scores = timed(f"apply to {n_eval} clips", lambda: apply(public, tuned))
            print(
                f"validation {tuned.validation}; public eval tuned F1 {scores['macro_f1']:.4f} "
                f"PSDS1 {scores['psds1']:.4f} PSDS2 {scores['psds2']:.4f}"
            )

    from sed.config import TrainConfig
    from sed.nn.macs import macs_per_10s
    from sed.training.energy import EnergyMeter

    timed("macs_per_10s, default CRNN (first count)", lambda: macs_per_10s(TrainConfig(), 10))
    meter = timed("EnergyMeter start (CodeCarbon offline)", lambda: EnergyMeter("FRA").start())
    timed("EnergyMeter read (per epoch)", meter.read)
    print(timed("EnergyMeter stop", meter.stop))


if __name__ == "__main__":
    main()
