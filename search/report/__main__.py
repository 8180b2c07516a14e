"""`python -m search.report results/NAME [--out FILE]`: write the experiment's report.html."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sed.errors import UserError

from .build import REPORT_FILE, build_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.report",
        description="Write a self-contained HTML report of a sedtune experiment folder "
        "(finished, partly finished or still running).",
    )
    parser.add_argument("experiment", type=Path, help="the experiment folder, OUT/NAME (e.g. results/demo)")
    parser.add_argument("--out", type=Path, help=f"where to write the page (default: EXPERIMENT/{REPORT_FILE})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        path = build_report(args.experiment, args.out)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sedtune: report written to {path} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
