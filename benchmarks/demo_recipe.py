"""Learning curves of CPU-scale CRNN recipes for the demo search (issue 13).

Each variant is a set of `TrainConfig` overrides on top of a base (the
`fixed` block of `spaces/demo.yaml` as it was before issue 13, `OLD_DEMO`);
each run trains the narrow CRNN with one thread, validates every epoch on the
synthetic validation split (event macro F1, PSDS at 10 operating points) and
scores the model selected on validation F1 on the public evaluation set
(event macro F1, PSDS at 50 operating points), as the final stage does.

Run:
    python benchmarks/demo_recipe.py --variants old-demo recipe --seeds 1 2
    python benchmarks/demo_recipe.py --variants recipe --set lr=0.01 --epochs 8
    python benchmarks/demo_recipe.py --variants recipe --step-times
    python benchmarks/demo_recipe.py --variants recipe --step-times --set batch_size=16 --set weak_fraction=0.25 \
        --set strong_fraction=0.25 --set n_mels=64    # spaces/demo.yaml's batch and bands of 2026-12-06
    python benchmarks/demo_recipe.py --list

Prints one learning-curve table per run and a summary table (markdown), and
appends one JSON line per run to `--jsonl` if given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from typing import Any

import torch

from sed.config import TrainConfig, apply_overrides, parse_set_arguments

#: spaces/demo.yaml's fixed block before issue 13 (plus its objective for a plain run).
OLD_DEMO: dict[str, Any] = dict(
    embedded_size="small",
    cnn_filters=(8, 16, 16, 16, 16, 16, 16),
    rnn_hidden=16,
    regularization="l2",
    batch_size=12,
    max_steps_per_epoch=8,
    lr=0.003,
    rampup_epochs=1,
    threshold=0.2,
    epochs=3,
    augmentation="random",
    locations="input",
    noise_scale=0.1,
    consistency_weight=1.0,
    l2=1e-5,
)

#: The ladder of issue 13: supervised (no consistency) runs on the `default`
#: embedded data, batch 12, 6 epochs x 20 steps, threshold 0.5, each rung
#: adding one change to the one above it (cumulative).
LADDER: list[tuple[str, dict[str, Any]]] = [
    (
        "L0-reference",
        dict(
            embedded_size="default",
            augmentation="none",
            regularization="none",
            consistency_weight=0.0,
            max_steps_per_epoch=20,
            epochs=6,
            threshold=0.5,
            dropout=0.5,
            lr=0.003,
            rampup_epochs=1,
        ),
    ),
    ("L1-dropout0", dict(dropout=0.0)),
    ("L2-bn_eps1e-5", dict(bn_eps=1e-5)),
    ("L3-lr0.01-noramp", dict(lr=0.01, rampup_epochs=0)),
    ("L4-torch-init", dict(weight_init="torch")),
    ("L5-4blocks", dict(bn_eps=1e-3, cnn_filters=(8, 16, 16, 16))),
    ("L6-maxpool", dict(pooling="max")),
    ("L7-weak1/2-strong1/2", dict(weak_fraction=0.5, strong_fraction=0.5)),
]

#: Named variants: overrides applied on top of OLD_DEMO, in order (later keys win).
VARIANTS: dict[str, dict[str, Any]] = {
    "old-demo": {},
    "supervised": dict(augmentation="none", regularization="none", consistency_weight=0.0),
}
_acc: dict[str, Any] = {}
for _name, _overrides in LADDER:
    _acc = {**_acc, **_overrides}
    VARIANTS[_name] = dict(_acc)
#: L6 with the reference initialisation back (and bn_eps 1e-5, so that BatchNorm still
#: normalises the near-zero gated-unit outputs): how much the initialisation alone costs.
VARIANTS["L6-with-reference-init"] = {**VARIANTS["L6-maxpool"], "weight_init": "reference", "bn_eps": 1e-5}

#: The CPU recipe (issue 13): the last ladder rung at batch 8 (4 weak + 4 strong clips),
#: 9 epochs x 25 steps, median filter 11 frames; supervised unless a variant adds an objective.
RECIPE: dict[str, Any] = {**_acc, "batch_size": 8, "max_steps_per_epoch": 25, "epochs": 9, "median_window": 11}
VARIANTS["recipe"] = dict(RECIPE)
VARIANTS["recipe-random-input"] = {
    **RECIPE,
    "augmentation": "random",
    "locations": "input",
    "regularization": "l2",
    "noise_scale": 0.1,
    "consistency_weight": 1.0,
}
VARIANTS["recipe-mixup-latent"] = {
    **RECIPE,
    "augmentation": "mixup",
    "locations": "latent",
    "regularization": "l2",
    "mixup_alpha": 0.5,
    "consistency_weight": 1.0,
}
VARIANTS["recipe-random-input-unlabeled"] = {**VARIANTS["recipe-random-input"], "weak_fraction": 0.25}


def build_config(variant: str, extra: dict[str, str]) -> TrainConfig:
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; --list shows them")
    base = dataclasses.replace(TrainConfig(), **OLD_DEMO)
    cfg = dataclasses.replace(base, **VARIANTS[variant])
    cfg = dataclasses.replace(cfg, device="cpu", num_threads=1, compute_val_psds=True)
    return apply_overrides(cfg, extra)


def bn_check(trainer, n_batches: int = 20) -> dict[str, float]:
    """Validation F1/PSDS of the final model with its BatchNorm statistics as trained
    (momentum 0.99: those of the last training pass) vs re-estimated as the plain
    average over `n_batches` clean training batches (no parameter changes)."""
    model = trainer.student
    out = {}
    probs = trainer.predict("synthetic_val", model=model)
    s = trainer._score("synthetic_val", probs, True, 10, ("psds",))
    out["as_trained_f1"], out["as_trained_psds"] = float(s["macro_f1"]), float(s["psds"])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i, batch in enumerate(trainer.batches):
            if i >= n_batches:
                break
            model(batch.features)
    for m, momentum in saved:
        m.momentum = momentum
    probs = trainer.predict("synthetic_val", model=model)
    s = trainer._score("synthetic_val", probs, True, 10, ("psds",))
    out["recalibrated_f1"], out["recalibrated_psds"] = float(s["macro_f1"]), float(s["psds"])
    return out


POST_GRID = [(t, m) for t in (0.3, 0.4, 0.5) for m in (7, 11, 15, 21)]


def post_grid(trainer) -> list[dict[str, float]]:
    """Public-eval event F1 (and PSDS at 50 points) of the selected model for other
    thresholds / median windows (post-processing only; the model is the same)."""
    import copy

    from sed.eval.metrics import evaluate_predictions

    model = copy.deepcopy(trainer.selected_model())
    if trainer.best_state is not None:
        model.load_state_dict(trainer.best_state)
    probs = trainer.predict("public_eval", model=model)
    split = trainer.data.split("public_eval")
    rows = []
    for threshold, median in POST_GRID:
        s = evaluate_predictions(
            probs,
            split.filenames,
            trainer.labels,
            split.events_frame(),
            split.durations,
            threshold=threshold,
            median_window=median,
            compute_psds=threshold == 0.5,
            n_thresholds=50,
            psds_variants=("psds",),
        )
        rows.append(
            dict(
                threshold=threshold,
                median=median,
                f1=float(s["macro_f1"]),
                psds=None if s.get("psds") is None else float(s["psds"]),
            )
        )
    return rows


def run_one(cfg: TrainConfig, cache: str | None, check_bn: bool = False, grid: bool = False) -> dict[str, Any]:
    from sed.training.trainer import Trainer, prepare_data

    data = prepare_data(cfg, cache_dir=cache, progress=False)
    trainer = Trainer(cfg, data=data, progress=False)
    curve = []
    started = time.perf_counter()
    cpu_started = time.process_time()
    for _ in range(cfg.epochs):
        m = trainer.train_epoch()
        curve.append(
            dict(
                epoch=m["epoch"],
                step=m["step"],
                loss_strong=m["loss_class_strong"],
                loss_weak=m["loss_class_weak"],
                val_f1=m["val_macro_f1"],
                val_psds=m["val_psds"],
                train_s=m["train_seconds"],
                epoch_s=m["epoch_seconds"],
            )
        )
    train_wall = time.perf_counter() - started
    train_cpu = time.process_time() - cpu_started
    ev = trainer.evaluate("public_eval")
    eval_wall = time.perf_counter() - started - train_wall
    grid_rows = post_grid(trainer) if grid else None
    bn = bn_check(trainer) if check_bn else None
    steps = sum(c["step"] - (curve[i - 1]["step"] if i else 0) for i, c in enumerate(curve))
    return dict(
        config={k: v for k, v in cfg.to_dict().items()},
        params=trainer.trainable_parameters,
        steps_per_epoch=trainer.steps_per_epoch,
        curve=curve,
        best_epoch=trainer.best_epoch,
        eval_f1=ev["eval_macro_f1"],
        eval_psds=ev["eval_psds"],
        train_wall_s=train_wall,
        train_cpu_s=train_cpu,
        eval_wall_s=eval_wall,
        step_s=sum(c["train_s"] for c in curve) / max(steps, 1),
        bn_check=bn,
        post_grid=grid_rows,
    )


STEP_OBJECTIVES: dict[str, dict[str, Any]] = {
    "none": dict(augmentation="none", regularization="none"),
    **{
        f"{aug} {loc}": dict(augmentation=aug, locations=loc, regularization="l2", consistency_weight=1.0)
        for aug in ("random", "adversarial", "vat", "mixup")
        for loc in ("input", "latent")
    },
    **{
        f"{aug} input": dict(augmentation=aug, locations="input", regularization="l2", consistency_weight=1.0)
        for aug in ("snr_noise", "filter", "filter_adversarial")
    },
}


def step_times(variant: str, extra: dict[str, str], reps: int = 7) -> None:
    """Seconds per training step of `variant`'s model and batch for every objective
    (random batch, one thread; median of reps - 2 steps after 2 warm-ups)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_common import ObjectiveStep

    from sed.training.batches import part_sizes
    from sed.training.host_memory import reuse_freed_memory
    from sed.training.objectives import Batch

    base = build_config(variant, extra)
    if base.reuse_host_memory:
        reuse_freed_memory()
    n_weak, n_unlabeled, n_strong = part_sizes(base.batch_size, base.weak_fraction, base.strong_fraction)
    b = base.batch_size
    weak = torch.zeros(b, dtype=torch.bool)
    strong = torch.zeros(b, dtype=torch.bool)
    weak[:n_weak] = True
    strong[b - n_strong :] = True
    batch = Batch(
        torch.randn(b, 628, base.n_mels),
        (torch.rand(b, 157, 10) > 0.8).float(),
        (torch.rand(b, 10) > 0.5).float(),
        strong,
        weak,
    )
    print(
        f"\n| objective | s/step (batch {b}: {n_weak} weak, {n_unlabeled} unlabeled, {n_strong} strong; "
        f"{base.n_mels} mel bands) |"
    )
    print("|---|---|")
    from sed.errors import ConfigError

    for name, objective in STEP_OBJECTIVES.items():
        try:
            cfg = dataclasses.replace(base, **objective).validate()
        except ConfigError as error:  # e.g. adversarial without dropout
            print(f"| {name} | - ({str(error).split(':')[0]}) |", flush=True)
            continue
        step = ObjectiveStep(cfg, batch)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        print(f"| {name} | {statistics.median(times[2:]):.3f} |", flush=True)


def print_curve(name: str, seed: int, result: dict[str, Any]) -> None:
    print(
        f"\n### {name} seed {seed} ({result['params']} params, {result['steps_per_epoch']} steps/epoch, "
        f"{result['step_s']:.3f} s/step, train+val {result['train_wall_s']:.1f} s wall / "
        f"{result['train_cpu_s']:.1f} s CPU, "
        f"public eval {result['eval_wall_s']:.1f} s)"
    )
    print("| epoch | step | strong BCE | weak BCE | val F1 | val PSDS | epoch s |")
    print("|---|---|---|---|---|---|---|")
    for c in result["curve"]:
        psds = "-" if c["val_psds"] is None else f"{c['val_psds']:.3f}"
        print(
            f"| {c['epoch']} | {c['step']} | {c['loss_strong']:.3f} | {c['loss_weak']:.3f} | "
            f"{c['val_f1']:.3f} | {psds} | {c['epoch_s']:.1f} |"
        )
    print(
        f"public eval (best epoch {result['best_epoch']}): F1 {result['eval_f1']:.3f} PSDS {result['eval_psds']:.3f}",
        flush=True,
    )
    if result.get("post_grid"):
        print(
            "public eval, other post-processing: "
            + "; ".join(
                f"thr {r['threshold']} med {r['median']}: F1 {r['f1']:.3f}"
                + ("" if r["psds"] is None else f" PSDS {r['psds']:.3f}")
                for r in result["post_grid"]
            )
        )
    if result.get("bn_check"):
        b = result["bn_check"]
        print(
            f"BatchNorm statistics, final model, validation: as trained F1 {b['as_trained_f1']:.3f} "
            f"PSDS {b['as_trained_psds']:.3f}; re-estimated over 20 clean batches F1 "
            f"{b['recalibrated_f1']:.3f} PSDS {b['recalibrated_psds']:.3f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["old-demo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--epochs", type=int, default=None, help="override every variant's epochs")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TrainConfig override applied to every variant (repeatable)",
    )
    parser.add_argument("--cache", default=os.environ.get("SEDTUNE_CACHE"))
    parser.add_argument("--jsonl", default=None, help="append one JSON line per run here")
    parser.add_argument(
        "--bn-check",
        action="store_true",
        help="also score the final model with BatchNorm statistics re-estimated on clean batches",
    )
    parser.add_argument(
        "--post-grid", action="store_true", help="also score public eval at other thresholds / median windows"
    )
    parser.add_argument(
        "--step-times",
        action="store_true",
        help="only time one training step per objective with the first variant's model",
    )
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, overrides in VARIANTS.items():
            print(f"{name}: {overrides}")
        return 0
    extra = parse_set_arguments(args.set)
    if args.epochs is not None:
        extra["epochs"] = str(args.epochs)
    torch.set_num_threads(1)
    if args.step_times:
        step_times(args.variants[0], extra)
        return 0
    summary = []
    for name in args.variants:
        for seed in args.seeds:
            cfg = build_config(name, {**extra, "seed": str(seed)})
            result = run_one(cfg, args.cache, args.bn_check, args.post_grid)
            result.update(variant=name, seed=seed, overrides=args.set)
            print_curve(name, seed, result)
            summary.append(result)
            if args.jsonl:
                with open(args.jsonl, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(result, default=str) + "\n")
    print("\n| variant | seeds | steps | s/step | train+val s wall | CPU s | best val F1 | eval F1 | eval PSDS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.variants:
        rows = [r for r in summary if r["variant"] == name]
        f1 = [r["eval_f1"] for r in rows]
        psds = [r["eval_psds"] for r in rows]
        best_val = [max(c["val_f1"] for c in r["curve"]) for r in rows]

        def fmt(xs: list[float]) -> str:
            return f"{statistics.mean(xs):.3f}" + (f" ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "")

        print(
            f"| {name} | {len(rows)} | {rows[0]['curve'][-1]['step']} | "
            f"{statistics.mean(r['step_s'] for r in rows):.3f} | "
            f"{statistics.mean(r['train_wall_s'] for r in rows):.0f} | "
            f"{statistics.mean(r['train_cpu_s'] for r in rows):.0f} | {fmt(best_val)} | {fmt(f1)} | {fmt(psds)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
