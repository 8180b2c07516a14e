"""The learning test's recipe under one CPU kernel path: best validation F1 per seed (issue #27).

PyTorch picks its CPU vector kernels when it starts (`ATEN_CPU_CAPABILITY` forces
one: avx512, avx2, default), so each kernel path is one run of this script:

    python benchmarks/kernel_paths.py --seeds 2020 1 2 3
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/kernel_paths.py --seeds 2020 1 2 3
    ATEN_CPU_CAPABILITY=default python benchmarks/kernel_paths.py --seeds 2020 1 2 3

Prints one JSON line per seed: the kernel path, the untrained validation F1,
the validation F1 and the strong / weak training losses per epoch, and the
CPU seconds of training. The recipe is tests/test_learning.py's (the demo's CPU
recipe on the `small` embedded data, 8 epochs of 15 steps); results in
benchmarks/README.md, "Kernel paths".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from sed.data.synth import ensure_embedded
from sed.presets import PRESETS
from sed.training.trainer import Trainer, prepare_data

RECIPE = dict(
    embedded_size="small",
    cnn_filters=(8, 16, 16, 16),
    rnn_hidden=16,
    pooling="max",
    weight_init="torch",
    dropout=0.0,
    rampup_epochs=0.0,
    lr=0.01,
    batch_size=8,
    weak_fraction=0.5,
    strong_fraction=0.5,
    max_steps_per_epoch=15,
    median_window=11,
    device="cpu",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sedtune-kernel-paths")
    args = parser.parse_args()
    root = ensure_embedded("small", seed=0, cache_dir=args.cache)
    data = None
    for seed in args.seeds:
        cfg = dataclasses.replace(PRESETS["none"], **RECIPE, num_threads=args.threads, seed=seed).validate()
        if data is None:
            data = prepare_data(cfg, data_root=root, cache_dir=args.cache, progress=False)
        cpu = time.process_time()
        trainer = Trainer(cfg, data=data, progress=False)
        untrained = trainer.validate()["val_macro_f1"]
        trainer.fit(args.epochs)
        rows = trainer.history
        print(
            json.dumps(
                {
                    "kernel_path": torch.backends.cpu.get_cpu_capability(),
                    "threads": args.threads,
                    "seed": seed,
                    "untrained_f1": round(untrained, 4),
                    "val_f1": [round(r["val_macro_f1"], 3) for r in rows],
                    "best_f1": round(max(r["val_macro_f1"] for r in rows), 3),
                    "loss_strong": [round(r["loss_class_strong"], 3) for r in rows],
                    "loss_weak": [round(r["loss_class_weak"], 3) for r in rows],
                    "cpu_s": round(time.process_time() - cpu, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
