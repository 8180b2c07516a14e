"""Does consistency training with an augmentation help on the `gap` embedded data? (issue 26)

Trains each named configuration (`CONFIGS`: the paper's families at the input
and a latent location, the realistic ones, and the no-augmentation control)
with the same seeds on the CPU recipe of the demo moved to `embedded_size:
gap` with the unlabeled part in every batch, and scores the model selected on
validation F1 on the public evaluation set (event macro F1, threshold 0.5,
as the final stage of a search). The report gives, per configuration, the
mean public-eval F1 over seeds with its 95 % t interval, and the paired
difference from the control (same seeds) with its 95 % interval, the paired
t-test and the Wilcoxon signed-rank p-values. Results and what they mean:
benchmarks/README.md, "A regime with a known answer?".

Run (one thread per run, runs one after the other, each appended to --jsonl):
    OMP_NUM_THREADS=1 python benchmarks/regime.py --configs none filter snr_noise --seeds 1 2 3 4 5
    python benchmarks/regime.py --report --jsonl benchmarks/results/regime.jsonl
    python benchmarks/regime.py --list
    OMP_NUM_THREADS=1 python benchmarks/regime.py --configs none random-input --set embedded_size=scarce epochs=36
    OMP_NUM_THREADS=1 python benchmarks/regime.py --configs none filter --postprocess \
        --set embedded_size=scarce-eval400 epochs=24 val_fraction=0.5 selection_split=validation
    python benchmarks/regime.py --report --metric eval_f1_tuned --jsonl benchmarks/results/regime-scarce-eval400.jsonl
    OMP_NUM_THREADS=1 python benchmarks/regime.py --configs none filter_adversarial --postprocess --seeds 1 2 3 4 5 \
        --set embedded_size=scarce-far epochs=24 val_fraction=0.5 selection_split=validation n_mels=64 \
        --jsonl benchmarks/results/regime-scarce-far.jsonl    # spaces/demo.yaml's regime and its answer

Each row records the machine it ran on (`machine`): a seed's run is reproducible on one
CPU kind only, so pair rows measured on the same machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sed.config import TrainConfig, apply_overrides, parse_set_arguments

#: The recipe: spaces/demo.yaml's fixed block on the `gap` data, batch 16 = 4 weak + 8
#: unlabeled + 4 strong (the paper's 1/4 - 1/2 - 1/4), 9 epochs x 25 steps.
RECIPE: dict[str, Any] = dict(
    embedded_size="gap",
    cnn_filters=(8, 16, 16, 16),
    rnn_hidden=16,
    pooling="max",
    weight_init="torch",
    dropout=0.0,
    batch_size=16,
    weak_fraction=0.25,
    strong_fraction=0.25,
    max_steps_per_epoch=25,
    epochs=9,
    lr=0.01,
    rampup_epochs=0,
    median_window=11,
    device="cpu",
    num_threads=1,
    track_energy=False,
)

_L2 = dict(regularization="l2", l2=1e-5, consistency_weight=1.0)
_MT = dict(regularization="mt", ema_decay=0.99, consistency_weight=2.0)
#: Each family's configuration (strengths: this project's defaults unless stated).
CONFIGS: dict[str, dict[str, Any]] = {
    "none": dict(augmentation="none", locations="input", regularization="none", consistency_weight=0.0),
    "random-input": dict(_L2, augmentation="random", locations="input", noise_scale=0.1),
    "random-latent": dict(_L2, augmentation="random", locations="latent", noise_scale=0.1),
    "adversarial-input": dict(_L2, augmentation="adversarial", locations="input", epsilon=0.1, dropout=0.1),
    "adversarial-latent": dict(_L2, augmentation="adversarial", locations="latent", epsilon=0.1, dropout=0.1),
    "vat-input": dict(_L2, augmentation="vat", locations="input", epsilon=0.1),
    "vat-latent": dict(_L2, augmentation="vat", locations="latent", epsilon=0.1),
    "mixup-input": dict(_L2, augmentation="mixup", locations="input", mixup_alpha=0.5),
    "mixup-latent": dict(_L2, augmentation="mixup", locations="latent", mixup_alpha=0.5),
    "snr_noise": dict(_L2, augmentation="snr_noise", locations="input", noise_snr=30.0),
    "snr_adversarial": dict(_L2, augmentation="snr_adversarial", locations="input", noise_snr=30.0),
    "filter": dict(_L2, augmentation="filter", locations="input", filter_db=10.0),
    "filter_adversarial": dict(_L2, augmentation="filter_adversarial", locations="input", filter_db=10.0),
    "filter_vat": dict(_L2, augmentation="filter_vat", locations="input", filter_db=10.0),
    # mean teacher (eq. 11): the DCASE baseline's objective (Gaussian input noise) and a latent one;
    # an EMA of ~100 steps (the reference's 0.999 averages over more steps than these runs take)
    "mt-random-input": dict(_MT, augmentation="random", locations="input", noise_scale=0.1),
    "mt-mixup-latent": dict(_MT, augmentation="mixup", locations="latent", mixup_alpha=0.5),
}


def build_config(name: str, seed: int, extra: dict[str, str]) -> TrainConfig:
    cfg = dataclasses.replace(TrainConfig(), **{**RECIPE, **CONFIGS[name], "seed": seed})
    return apply_overrides(cfg, extra)


def run_one(cfg: TrainConfig, cache: str | None, postprocess: bool = False) -> dict[str, Any]:
    """One training run scored on the public evaluation set; with `postprocess`, also after the
    final stage's post-processing (a median window and a threshold per class tuned on the
    validation part's scores, sed.eval.pp_tuning): `eval_f1_tuned`, `eval_psds1_tuned`."""
    import tempfile

    from sed.eval.pp_tuning import tune_outputs
    from sed.training.trainer import Trainer, prepare_data

    data = prepare_data(cfg, cache_dir=cache, progress=False)
    trainer = Trainer(cfg, data=data, progress=False)
    started = time.perf_counter()
    val = [float(trainer.train_epoch()["val_macro_f1"]) for _ in range(cfg.epochs)]
    train_s = time.perf_counter() - started
    tuned: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="regime-") as folder:
        outputs = Path(folder)
        ev = trainer.evaluate("public_eval", out_dir=outputs / "public_eval" if postprocess else None)
        if postprocess:
            trainer.write_outputs("validation", outputs / "validation")
            public = tune_outputs(outputs, cfg.median_window, cfg.threshold)["public_eval"]
            tuned = {
                "eval_f1_tuned": float(public["macro_f1"]),
                "eval_psds1_tuned": float(public["psds1"]) if public.get("psds1") is not None else None,
            }
    psds = ev.get("eval_psds")
    return dict(
        val_f1=val,
        best_epoch=trainer.best_epoch,
        eval_f1=float(ev["eval_macro_f1"]),
        eval_psds=None if psds is None else float(psds),
        train_s=train_s,
        **tuned,
    )


def machine() -> dict[str, str]:
    """Where a row was measured: the CPU model beside `sed.eval.metrics.metric_versions()` (package
    versions and torch's CPU kernel path). A seed's numbers differ between kernel paths and CPU
    models (same seed, same numbers only on one machine kind), so pair rows from the same machine.
    (The rows of 2026-12-06 carry only `cpu`, `kernels` = the kernel path, and `torch`.)"""
    import platform

    from sed.eval.metrics import metric_versions

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    return {"cpu": model, **metric_versions()}


def _t_interval(values: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def report(rows: list[dict[str, Any]], control: str = "none", metric: str = "eval_f1") -> str:
    """The markdown table of `metric` (eval_f1 | eval_psds): per (configuration, overrides) group,
    mean [95 % CI] and the paired test vs the control run with the same overrides (the seeds both have)."""
    from scipy import stats

    groups: dict[str, dict[int, float]] = defaultdict(dict)
    best_val: dict[str, list[float]] = defaultdict(list)
    controls: dict[str, str] = {}  # each group's control: the control run with the same overrides
    for row in rows:
        suffix = " " + " ".join(row["set"]) if row.get("set") else ""
        key = row["name"] + suffix
        controls[key] = control + suffix
        if row.get(metric) is not None:
            groups[key][row["seed"]] = row[metric]
        best_val[key].append(max(row["val_f1"]))
    lines = [
        f"| configuration | seeds | selection score (best val F1, the selection split) | public-eval {metric} [95 % CI] | paired diff vs control [95 % CI] "
        "| t-test p | Wilcoxon p |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, by_seed in groups.items():
        values = list(by_seed.values())
        mean, low, high = _t_interval(values)
        reference = groups.get(controls[key], {})
        seeds = sorted(set(by_seed) & set(reference))
        paired = "-"
        t_p = w_p = "-"
        if key != controls[key] and len(seeds) >= 2:
            diffs = [by_seed[s] - reference[s] for s in seeds]
            d, d_low, d_high = _t_interval(diffs)
            paired = f"{d:+.3f} [{d_low:+.3f}, {d_high:+.3f}] (n={len(seeds)})"
            t_p = f"{stats.ttest_rel([by_seed[s] for s in seeds], [reference[s] for s in seeds]).pvalue:.3f}"
            if any(diffs):
                w_p = f"{stats.wilcoxon(diffs).pvalue:.3f}"
        val = sum(best_val[key]) / len(best_val[key])
        lines.append(
            f"| {key} | {len(values)} | {val:.3f} | {mean:.3f} [{low:.3f}, {high:.3f}] | {paired} | {t_p} | {w_p} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["none"], help="names from --list")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides for every configuration")
    parser.add_argument("--cache", default=None, help="sedtune cache folder (data and features)")
    parser.add_argument("--jsonl", default="benchmarks/results/regime.jsonl")
    parser.add_argument("--report", action="store_true", help="only print the table of --jsonl")
    parser.add_argument(
        "--metric",
        default="eval_f1",
        choices=["eval_f1", "eval_psds", "eval_f1_tuned", "eval_psds1_tuned"],
        help="what --report tabulates",
    )
    parser.add_argument(
        "--postprocess", action="store_true", help="also score after the tuned post-processing (eval_f1_tuned)"
    )
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        for name, overrides in CONFIGS.items():
            print(f"{name:20s} {overrides}")
        return
    path = Path(args.jsonl)
    if not args.report:
        extra = parse_set_arguments(args.set)
        path.parent.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for name in args.configs:
                result = run_one(build_config(name, seed, extra), args.cache, args.postprocess)
                row = dict(name=name, seed=seed, set=args.set, **result, machine=machine())
                print(json.dumps(row), flush=True)
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    print(report(rows, metric=args.metric))


if __name__ == "__main__":
    main()
