"""Trials at once and trial start-up on a Ray cluster with logical GPUs (issue 22).

    python benchmarks/cluster_packing.py [--gpus 2] [--cpus 4] [--trials-per-gpu 2] [--samples 8]

Starts a local Ray whose node declares `--gpus` logical GPUs (`ray.init(num_gpus=N)`:
Ray hands them out as real ones, torch runs on the CPU) and runs the tiny test
space (`tests/spaces/tiny.yaml` on `gpu: auto`, FIFO, 2 one-step epochs per trial)
through `python -m search.run`'s `main`, search stage only. Prints the trials
promised and seen at once (Tune's RUNNING count, and the overlap of the trials'
own start / last-report times), the trials per GPU at most, and each trial's
start-up: from Tune starting it (driver clock) to the trainable running
(`started_at`), and to its first report (end of epoch 1: data loaded, one step,
validation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from clusters import gpu_space_text, max_overlap  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument("--trials-per-gpu", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument(
        "--from",
        dest="existing",
        type=Path,
        help="summarise an experiment folder already run (e.g. the logical-GPU test's) instead",
    )
    args = parser.parse_args()
    if args.existing:
        summarize(args.existing, args.trials_per_gpu)
        return

    import os

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray

    from search.run import main as run_main
    from sed.data.synth import ensure_embedded

    with tempfile.TemporaryDirectory(prefix="sedtune-packing-") as tmp:
        cache = Path(tmp) / "cache"
        data = ensure_embedded("tiny", seed=0, cache_dir=cache)
        space = Path(tmp) / "gpus.yaml"
        space.write_text(gpu_space_text(args.samples, final=False, trials_per_gpu=args.trials_per_gpu))
        ray.init(num_cpus=args.cpus, num_gpus=args.gpus, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter()
        try:
            code = run_main(
                [
                    "--space",
                    str(space),
                    "--out",
                    str(Path(tmp) / "out"),
                    "--no-report",
                    "--data",
                    str(data),
                    "--cache-dir",
                    str(cache),
                ]
            )
        finally:
            ray.shutdown()
        wall = time.perf_counter() - started
        summarize(Path(tmp) / "out" / "gpus", args.trials_per_gpu, f"exit {code}; search stage wall {wall:.1f} s")


def summarize(exp: Path, trials_per_gpu: int, head: str = "") -> None:
    """Trials at once, per GPU, and start-up of the search stage (and final stage, if any) in `exp`."""
    for stage, board_file in (("search", "search.parquet"), ("final", "final.parquet")):
        if not (exp / board_file).is_file():
            continue
        board = pd.read_parquet(exp / board_file)
        record = json.loads((exp / "concurrency.json").read_text())[stage]
        startup, first = [], []
        for _, row in board.iterrows():
            scheduled = record["scheduled_at"].get(row["trial_id"])
            progress = pd.read_csv(Path(row["trial_dir"]) / "progress.csv")
            if scheduled is not None:
                startup.append(row["started_at"] - scheduled)
                first.append(float(progress["reported_at"].iloc[0]) - scheduled)
        per_gpu = max(max_overlap(g) for _, g in board.groupby("gpu_ids"))
        print(
            f"{stage}: {head} {len(board)} trials; promised at once {record['promised']}; Tune RUNNING at most "
            f"{record['peak_running']}; overlap of the trials' own times at most {max_overlap(board)}; "
            f"per GPU at most {per_gpu} (packing {trials_per_gpu})"
        )
        print(
            f"  start-up (Tune start -> trainable running): median {statistics.median(startup):.1f} s, "
            f"max {max(startup):.1f} s; to the first report (epoch 1 done): median "
            f"{statistics.median(first):.1f} s, max {max(first):.1f} s"
        )
        print(f"  GPU ids: {sorted(board['gpu_ids'].value_counts().items())}")


if __name__ == "__main__":
    main()
