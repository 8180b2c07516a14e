"""Search throughput: Ray start-up overhead and trials (epochs) per hour with 1 vs 2 concurrent trials.

    python benchmarks/search_throughput.py [--space spaces/demo.yaml] [--out /tmp/sedtune-bench]
        [--num-samples N] [--max-epochs N] [--fifo]

For each concurrency the space is copied with `max_concurrent` set and run
through `python -m search.run --no-final` in a fresh process (features are
built once beforehand, so the runs only train); the wall time and the number
of trials give trials per hour. Ray start-up is `ray.init` + `ray.shutdown`
in a fresh process, timed around the calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def ray_startup_seconds() -> float:
    code = (
        "import time, ray; t = time.perf_counter(); ray.init(num_cpus=2, logging_level='ERROR', "
        "include_dashboard=False); t_init = time.perf_counter() - t; ray.shutdown(); print(t_init)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def run_search(
    space: Path, concurrency: int, out: Path, cache: Path | None, extra: list[str] = (), fifo: bool = False
) -> tuple[float, int, float, int]:
    spec = yaml.safe_load(space.read_text())
    spec["max_concurrent"] = concurrency
    if fifo:  # the same trials run every epoch whatever the concurrency
        spec["scheduler"] = {"kind": "fifo", "max_epochs": spec["scheduler"]["max_epochs"]}
    spec["name"] = f"{spec['name']}-c{concurrency}"
    variant = out / f"{spec['name']}.yaml"
    variant.parent.mkdir(parents=True, exist_ok=True)
    variant.write_text(yaml.safe_dump(spec))
    cmd = [sys.executable, "-m", "search.run", "--space", str(variant), "--out", str(out), "--no-final", *extra]
    if cache is not None:
        cmd += ["--cache-dir", str(cache)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    import pandas as pd

    board = pd.read_parquet(out / spec["name"] / "search.parquet")
    return wall, len(board), float(board["wall_seconds"].sum()), int(board["epochs_run"].sum())


def main() -> None:  # noqa: C901
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", type=Path, default=ROOT / "spaces" / "demo.yaml")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sedtune-bench"))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--num-samples", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--fifo", action="store_true", help="FIFO instead of the space's scheduler")
    args = parser.parse_args()
    extra = []
    if args.num_samples is not None:
        extra += ["--num-samples", str(args.num_samples)]
    if args.max_epochs is not None:
        extra += ["--max-epochs", str(args.max_epochs)]
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    startup = [ray_startup_seconds() for _ in range(2)]
    print(
        f"ray.init (local, 2 CPUs): {min(startup):.1f} s (runs: {', '.join(f'{s:.1f}' for s in startup)})", flush=True
    )
    rates = {}
    for concurrency in args.concurrency:
        wall, trials, inside, epochs = run_search(args.space, concurrency, args.out, args.cache_dir, extra, args.fifo)
        rates[concurrency] = epochs / wall
        print(
            f"max_concurrent={concurrency}: {trials} trials, {epochs} epochs in {wall:.0f} s -> "
            f"{epochs * 3600 / wall:.0f} epochs/hour, "
            f"{trials * 3600 / wall:.0f} trials/hour (search stage only, Ray start included); "
            f"time inside the trials (Tune's time_total_s) {inside:.0f} s, i.e. {inside / concurrency:.0f} s "
            f"per slot: {wall - inside / concurrency:.0f} s of the wall outside any trial",
            flush=True,
        )
    if 1 in rates and 2 in rates:
        print(f"2 concurrent trials: {rates[2] / rates[1]:.2f}x the epochs per second of 1")


if __name__ == "__main__":
    main()
