"""Tune the post-processing of a trained run per class: `python -m sed.tune_postprocess OUT_DIR`.

OUT_DIR is a folder written by ``python -m sed.train --out OUT_DIR`` (or a
final trial's ``outputs/`` folder of ``search.run``): it has ``validation/``
and ``public_eval/`` with their raw score files (README "Outputs"). The
median window and threshold per class are chosen on ``validation/`` and
applied to ``public_eval/`` (sed.eval.pp_tuning); the result goes to
``OUT_DIR/postprocess/`` and, for a sed.train folder, into ``metrics.json``
(key ``postprocess``). The run's own files are not changed. For every final
trial of an experiment folder use ``python -m search.postprocess
results/NAME`` (it fills final.parquet's ``*_tuned`` columns).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_config", "main"]


def run_config(folder: Path) -> dict[str, Any]:
    """The run's config: ``metrics.json``'s (sed.train), else ``best_model.pt``'s."""
    metrics = folder / "metrics.json"
    if metrics.is_file():
        return dict(json.loads(metrics.read_text())["config"])
    model = folder / "best_model.pt"
    if model.is_file():
        import torch

        return dict(torch.load(model, weights_only=True, map_location="cpu")["config"])
    raise FileNotFoundError(
        f"{folder}: neither metrics.json nor best_model.pt, so the run's median window and threshold are "
        "unknown. Fix: give the --out folder of python -m sed.train, or pass --median-window and --threshold."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sed.tune_postprocess",
        description="Tune per-class median windows and thresholds on validation/, apply them to public_eval/.",
    )
    parser.add_argument("out_dir", type=Path, help="a sed.train --out folder (validation/ and public_eval/ inside)")
    parser.add_argument("--median-window", type=int, default=None, help="the untuned window (default: the run's)")
    parser.add_argument("--threshold", type=float, default=None, help="the untuned threshold (default: the run's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sed.errors import UsageError, UserError
    from sed.eval.pp_tuning import POSTPROCESS_DIR, POSTPROCESS_FILE, tune_outputs
    from sed.io import write_json

    folder = args.out_dir
    try:
        if (folder / "final.parquet").is_file():
            raise UsageError(
                f"{folder} is an experiment folder of search.run. Fix: python -m search.postprocess {folder} "
                "(tunes every final trial and fills final.parquet's *_tuned columns)."
            )
        config = run_config(folder) if args.median_window is None or args.threshold is None else {}
        window = args.median_window if args.median_window is not None else int(config["median_window"])
        threshold = args.threshold if args.threshold is not None else float(config["threshold"])
        record = tune_outputs(folder, window, threshold)
    except (UserError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics = folder / "metrics.json"
    if metrics.is_file():
        report = json.loads(metrics.read_text())
        report["postprocess"] = record
        write_json(metrics, report)
    validation = record["tuned"]["validation"]
    for key in ("macro_f1", "psds1", "psds2"):
        v = validation[key]
        print(
            f"validation {key:9s} {v['untuned']:.4f} -> {v['tuned']:.4f} (tuned)   "
            f"public eval tuned {record['public_eval'][key]:.4f}"
        )
    print(f"{record['seconds']:.1f} s; wrote {folder / POSTPROCESS_DIR / POSTPROCESS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
