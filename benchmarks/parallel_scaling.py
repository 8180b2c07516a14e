"""How much faster two training processes are than one on this machine, without Ray (issue 13, item 6).

The demo runs two trials at a time on 2 cores; Ray Tune measured 1.53x the
throughput of one trial. This separates the machine's own scaling from
Ray's share: it trains the demo's CRNN (the `fixed` block of
`spaces/demo.yaml`, one thread per process, the given objective) for
`--steps` steps in 1 process, then in 2 processes started together, and
compares steps per second. What the machine gives two independent
processes is the ceiling any scheduler can reach here.

Run: python benchmarks/parallel_scaling.py [--steps 40] [--set augmentation=vat --set locations=latent]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def config(extra: dict[str, str]) -> Any:
    from search.space import load_space
    from sed.config import TrainConfig, apply_overrides

    base = load_space(ROOT / "spaces" / "demo.yaml").constants()
    return apply_overrides(
        TrainConfig(), {**base, "augmentation": "random", "locations": "latent", "noise_scale": 0.1, **extra}
    )


def worker(args: tuple[dict[str, str], int, Any]) -> float:
    extra, steps, barrier = args
    import torch

    torch.set_num_threads(1)
    from sed.training.trainer import Trainer

    trainer = Trainer(config(extra), progress=False)
    batches = iter(trainer.batches)
    for _ in range(3):  # warm-up
        trainer._train_step(next(batches))
    barrier.wait()
    started = time.perf_counter()
    done = 0
    while done < steps:
        for batch in trainer.batches:
            trainer._train_step(batch)
            done += 1
            if done >= steps:
                break
    return time.perf_counter() - started


def run(n: int, extra: dict[str, str], steps: int) -> list[float]:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            return pool.map(worker, [(extra, steps, barrier)] * n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.set)
    from sed.training.trainer import prepare_data

    prepare_data(config(extra), progress=False)  # features built before timing
    one = run(1, extra, args.steps)
    two = run(2, extra, args.steps)
    rate_one = args.steps / one[0]
    rate_two = sum(args.steps / t for t in two)
    print(
        f"objective {config(extra).augmentation} at {config(extra).locations}, {args.steps} steps each, "
        f"load average before {os.getloadavg()[0]:.1f}"
    )
    print(
        f"1 process: {one[0]:.1f} s ({rate_one:.2f} steps/s); 2 processes: {two[0]:.1f} s and {two[1]:.1f} s "
        f"({rate_two:.2f} steps/s together): {rate_two / rate_one:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
