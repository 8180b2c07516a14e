"""Time the generation of the embedded dataset (sed.data.synth).

    python benchmarks/data_build.py [--size default] [--workers 1 2] [--repeats 1]

For each worker count: wall seconds, CPU seconds (this process and its worker
processes), clips per second and the size on disk, with the load average of
the machine before the run (the machine may be shared: CPU seconds are the
figure to compare). Generation goes into a temporary folder that is deleted.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import soundfile as sf

from sed.data import synth


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(synth.SIZES), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    sizes = synth.SIZES[args.size]
    clips = sum(vars(sizes).values())
    print(
        f"size {args.size} ({clips} clips of 10 s), seed {args.seed}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, soundfile {sf.__version__}"
    )
    print("workers | wall s | CPU s | clips/s (wall) | disk MB | load avg before")
    for workers in args.workers:
        for _ in range(args.repeats):
            folder = Path(tempfile.mkdtemp(prefix="sedtune-bench-"))
            try:
                load = os.getloadavg()[0]
                cpu, wall = _cpu_seconds(), time.perf_counter()
                root = synth.generate_dataset(folder / "data", args.size, args.seed, workers=workers)
                wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
                size_mb = _disk_bytes(root) / 1e6
                print(f"{workers} | {wall:.1f} | {cpu:.1f} | {clips / wall:.0f} | {size_mb:.0f} | {load:.1f}")
            finally:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
