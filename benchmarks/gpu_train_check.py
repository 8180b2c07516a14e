"""A short training run with the CUDA-graph step against the eager step: same data, same seeds.

On the GPU machine (the embedded dataset is generated there; its metric
libraries are not needed there):

    python benchmarks/gpu_train_check.py train --out DIR --epochs 8 --seeds 3

trains the baseline preset (ramp-up shortened to 2 epochs) with
`fast_step=off` and `fast_step=graph` for each seed, skipping the per-epoch
validation, and writes the final student's frame probabilities on the
synthetic validation split and the per-epoch losses and train seconds to
DIR/train_check.npz / .json. Then, on any machine with the dataset:

    python benchmarks/gpu_train_check.py score --npz DIR/train_check.npz

scores each run's validation event macro F1 (sed.evaluation, as
`Trainer.validate`) and prints mean and spread per mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sed.config import TrainConfig  # noqa: E402
from sed.data.prepare import prepare_data  # noqa: E402
from sed.presets import PRESETS  # noqa: E402
from sed.training.trainer import Trainer  # noqa: E402


def config(epochs: int, seed: int, mode: str, size: str) -> TrainConfig:
    return dataclasses.replace(
        PRESETS["baseline"],
        epochs=epochs,
        seed=seed,
        fast_step=mode,
        rampup_epochs=2.0,
        embedded_size=size,
    ).validate()


def train(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = prepare_data(config(args.epochs, 0, "off", args.size), None, args.cache, progress=False)
    prep_seconds = time.perf_counter() - start
    print(f"data ready in {prep_seconds:.1f} s", flush=True)
    arrays: dict[str, np.ndarray] = {}
    runs: dict[str, dict] = {"prep_seconds": {"value": prep_seconds}}
    for seed in range(args.seeds):
        for mode in ("off", "graph" if torch.cuda.is_available() else "auto"):  # auto = off on a CPU dry run
            trainer = Trainer(config(args.epochs, seed, mode, args.size), data=data, progress=False)
            trainer.validate = lambda: {}  # type: ignore[method-assign]  # scored afterwards
            history = []
            for _ in range(args.epochs):
                m = trainer.train_epoch()
                history.append({k: m[k] for k in ("loss_total", "loss_class", "loss_const", "train_seconds", "steps")})
            key = f"{mode}_{seed}"
            arrays[key] = trainer.predict("synthetic_val")
            runs[key] = {
                "history": history,
                "fast": trainer.fast is not None,
                "graphs": 0 if trainer.fast is None else len(trainer.fast.graphs),
            }
            steps = sum(h["steps"] for h in history)
            seconds = sum(h["train_seconds"] for h in history)
            print(
                f"{key}: {steps} steps in {seconds:.1f} s ({steps / seconds:.1f} steps/s incl. data loading), "
                f"last loss {history[-1]['loss_total']:.4f}",
                flush=True,
            )
            del trainer
            torch.cuda.empty_cache()
    np.savez_compressed(args.out / "train_check.npz", **arrays)
    (args.out / "train_check.json").write_text(json.dumps(runs, indent=2))


def score(args: argparse.Namespace) -> None:
    arrays = np.load(args.npz)
    cfg = config(args.epochs, 0, "off", args.size)
    data = prepare_data(cfg, None, args.cache, progress=False)
    from sed.eval.evaluation import Evaluator

    evaluator = Evaluator(data, cfg, torch.device("cpu"), torch.bfloat16)
    by_mode: dict[str, list[float]] = {}
    for key in sorted(arrays.files):
        scores = evaluator.score("synthetic_val", arrays[key], False, 10)
        f1 = float(scores["macro_f1"])
        by_mode.setdefault(key.split("_")[0], []).append(f1)
        print(f"{key}: val event macro F1 {f1:.4f}")
    for mode, values in by_mode.items():
        print(
            f"{mode}: mean {np.mean(values):.4f}, sd {np.std(values, ddof=1) if len(values) > 1 else 0:.4f}, {values}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("train", "score"))
    parser.add_argument("--out", type=Path, default=Path("train_check"))
    parser.add_argument("--npz", type=Path)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", default="default")
    args = parser.parse_args()
    train(args) if args.what == "train" else score(args)


if __name__ == "__main__":
    main()
