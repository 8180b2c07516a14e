"""Cost of `python -m search.report` on a synthetic 100-trial experiment (issue #14).

Writes `search.report.synthetic.write_synthetic_experiment(n_trials)` into a
temporary folder (100 search trials with per-epoch progress.csv, ASHA-like
stops, two metrics, a final stage of 3 configs + the control x 3 seeds), then
times

- `cold`: `python -m search.report FOLDER` in a fresh process (imports of
  matplotlib, Optuna, scikit-learn and -- through sed.config -- torch
  included), median of --repeats runs, wall and CPU seconds (the CPU
  figure is the one to trust on a shared machine);
- `warm`: `build_report(FOLDER)` again in this process (imports done), and its
  parts: reading the folder, the figures and the fANOVA importances.

Usage: python benchmarks/report_build.py [--trials 100] [--repeats 3]
Prints the figures for benchmarks/README.md ("Report build").
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from search.report import build_report, load_experiment
    from search.report.study import importances, leaderboard_study
    from search.report.synthetic import write_synthetic_experiment

    with tempfile.TemporaryDirectory(prefix="sedtune-report-bench-") as tmp:
        folder = write_synthetic_experiment(Path(tmp) / "synthetic", n_trials=args.trials)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        cold, cold_cpu = [], []
        for _ in range(args.repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "search.report", str(folder)], check=True, env=env, capture_output=True
            )
            cold.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cold_cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        build_report(folder)  # imports
        warm, warm_cpu, load, imp = [], [], [], []
        for _ in range(args.repeats):
            started, cpu = time.perf_counter(), time.process_time()
            build_report(folder)
            warm.append(time.perf_counter() - started)
            warm_cpu.append(time.process_time() - cpu)
            started = time.perf_counter()
            exp = load_experiment(folder)
            load.append(time.perf_counter() - started)
            started = time.perf_counter()
            for metric in exp.space.metrics:
                importances(leaderboard_study(exp.search, exp.space, metric), metric)
            imp.append(time.perf_counter() - started)
        size = (folder / "report.html").stat().st_size
    print(f"trials {args.trials}; load average {os.getloadavg()[0]:.1f}")
    print(
        f"cold (python -m search.report, fresh process): median wall {statistics.median(cold):.2f} s "
        f"{[round(c, 2) for c in cold]}, CPU {statistics.median(cold_cpu):.2f} s"
    )
    print(
        f"warm build_report: median wall {statistics.median(warm):.2f} s, CPU {statistics.median(warm_cpu):.2f} s; of which reading the folder "
        f"{statistics.median(load):.2f} s, fANOVA importances (2 metrics) {statistics.median(imp):.2f} s"
    )
    print(f"report.html: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
