"""Train one configuration: `python -m sed.train [--preset NAME] [--set key=value ...]`.

Without `--data` the embedded DESED-like dataset is generated once into the
cache and used. Writes to `--out` (default `results/train/<preset>`):

- `metrics.json`: validation (20 % synthetic split) and public-eval metrics
  of the selected model (student by default, as the reference; `model` says
  which; the epoch is chosen on `selection_metric`), the DESED validation-set
  metrics, the per-epoch history, the full config, `trainable_parameters`,
  the events clipped to their clip end, the package versions, and the
  compute: `energy_kwh` / `energy_source` (CodeCarbon's offline tracker,
  sed.training.energy: measured or estimated, and how), `macs_per_10s`
  (sed.nn.macs), `train_steps`, `train_seconds`. Strict JSON:
  an undefined number (the F1 of a class absent from a split, 0/0) is `null`,
  not the bare `NaN` Python would write (sed.eval.outputs);
- `best_model.pt`: the selected weights with config, labels, scaler, feature
  settings and package versions (load with `torch.load(weights_only=True)`;
  `python -m sed.predict --model best_model.pt AUDIO --out DIR` uses it);
- `validation/` and `public_eval/`: the DCASE-format files of the selected
  model on the DESED validation and public evaluation sets (sed.eval.outputs:
  `detections.tsv`, `scores/raw/`, `scores/filtered/`, `durations.tsv`,
  `ground_truth.tsv`; `python -m sed.score` rescores them);
- `checkpoint/trainer_state.pt`: the full trainer state after the last epoch;
- `tensorboard/`: scalars of every loss term, learning rate, consistency
  weight and validation metric.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from sed.config import TrainConfig, apply_overrides, parse_set_arguments
from sed.errors import UsageError, UserError
from sed.presets import PRESETS, REALISTIC_PRESETS, preset


def _field_help() -> str:
    lines = []
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        lines.append(f"  {f.name} = {getattr(defaults, f.name)!r}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sed.train",
        description="Train the DCASE 2020 task 4 CRNN with one consistency objective of the paper.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Presets (paper Table 1): "
        + ", ".join(PRESETS)
        + "\nPresets (beyond the paper): "
        + ", ".join(REALISTIC_PRESETS)
        + "\n\nConfig keys for --set (defaults):\n"
        + _field_help(),
    )
    parser.add_argument(
        "--preset", default="baseline", help="Table 1 row or realistic preset to start from (default: baseline)"
    )
    parser.add_argument("--data", type=Path, default=None, help="DESED-layout dataset root (default: embedded data)")
    parser.add_argument(
        "--layout",
        default=None,
        help="where the parts live under --data: auto (default), desed2020, desed2021, "
        "or a layout YAML file (sed/data/layouts.py)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the config's)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: results/train/PRESET)")
    parser.add_argument(
        "--cache-dir",
        "--cache",
        dest="cache",
        type=Path,
        default=None,
        help="feature/dataset cache (default: $SEDTUNE_CACHE or ~/.cache/sedtune); --cache is the old name",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field; repeatable (e.g. --set epsilon=0.5)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint if present")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except UserError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


def compute_record(trainer: Any, config: Any, energy: Any, seconds: float) -> dict[str, Any]:
    """metrics.json's compute figures: energy_kwh / energy_source (None when not tracked), macs_per_10s,
    train_steps, train_seconds (the fit's wall time, this session's when resumed)."""
    from sed.nn.macs import macs_per_10s

    return {
        "energy_kwh": None if energy is None else energy.kwh,
        "energy_source": "not tracked (track_energy=false)" if energy is None else energy.source,
        "energy_country": config.energy_country,
        "macs_per_10s": macs_per_10s(config, len(trainer.data.labels)),
        "train_steps": int(trainer.step),
        "train_seconds": float(seconds),
    }


def _run(args: argparse.Namespace) -> int:
    from sed.eval.metrics import metric_versions
    from sed.io import write_json
    from sed.training.trainer import Trainer, TrainingDiverged

    config = preset(args.preset)
    overrides = parse_set_arguments(args.overrides)
    if args.epochs is not None:
        overrides["epochs"] = str(args.epochs)
    if args.data is not None:
        overrides["data"] = str(args.data)
    if args.layout is not None:
        overrides["layout"] = str(args.layout)
    config = apply_overrides(config, overrides)
    out = (args.out or Path("results") / "train" / args.preset).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"cannot write to output directory {out}: {error}; choose another --out") from None

    trainer = Trainer(config, cache_dir=args.cache, log_dir=out / "tensorboard")
    if args.resume and (out / "checkpoint").is_dir():
        trainer.load_checkpoint(out / "checkpoint")
        print(f"resumed from {out / 'checkpoint'} at epoch {trainer.epoch}", file=sys.stderr)
    print(
        f"training preset {args.preset!r}: augmentation={config.augmentation} locations={config.locations} "
        f"regularization={config.regularization}, {trainer.trainable_parameters:,} parameters, "
        f"{trainer.steps_per_epoch} steps/epoch on {trainer.device}, data {trainer.data.root}",
        file=sys.stderr,
    )
    from sed.training.energy import EnergyMeter

    meter = EnergyMeter(config.energy_country).start() if config.track_energy else None
    fit_start = time.perf_counter()
    try:
        trainer.fit(callback=lambda m: trainer.save_checkpoint(out / "checkpoint"))
    except TrainingDiverged as error:
        print(f"error: training diverged: {error}", file=sys.stderr)
        return 3
    finally:
        trainer.close()
        energy = meter.stop() if meter is not None else None
    compute = compute_record(trainer, config, energy, time.perf_counter() - fit_start)
    evaluation = trainer.evaluate("public_eval", out_dir=out / "public_eval")
    desed_val = trainer.evaluate("validation", prefix="validation", out_dir=out / "validation")
    trainer.save_best_model(out / "best_model.pt")
    report = {
        "preset": args.preset,
        "model": config.select,
        "best_epoch": trainer.best_epoch,
        "validation_synthetic": trainer.best_metrics,
        "validation_desed": {k: v for k, v in desed_val.items() if k != "metric_versions"},
        "public_eval": {k: v for k, v in evaluation.items() if k != "metric_versions"},
        "history": trainer.history,
        "trainable_parameters": trainer.trainable_parameters,
        # energy (CodeCarbon, offline), MACs per 10 s clip, steps and wall time of the training (fit)
        **compute,
        "config": config.to_dict(),
        "data_root": str(trainer.data.root),
        "missing_audio": dict(trainer.data.dataset.missing_audio),
        "clipped_events": dict(trainer.data.dataset.clipped_events),
        "versions": metric_versions(),
    }
    write_json(out / "metrics.json", report)
    print(
        f"done: best epoch {trainer.best_epoch} ({config.select}); "
        f"val macro F1 {trainer.best_metrics.get('val_macro_f1', float('nan')):.3f}; "
        f"public eval macro F1 {evaluation['eval_macro_f1']:.3f} PSDS {evaluation['eval_psds']:.3f} "
        f"PSDS1 {evaluation['eval_psds1']:.3f} PSDS2 {evaluation['eval_psds2']:.3f}; "
        f"wrote {out / 'metrics.json'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
