"""Training-step time: our CRNN vs the reference, and each objective vs plain supervised.

Usage (the reference is a local checkout of turpaultn/dcase20_task4, never committed):

    python benchmarks/step_time.py --reference /path/to/dcase20_task4/baseline/models
    python benchmarks/step_time.py --reference DIR --host-memory both   # both allocator settings
    python benchmarks/step_time.py --objectives            # objective ratios only
    python benchmarks/step_time.py --memory                # peak RSS per objective (subprocesses)
    python benchmarks/step_time.py --realistic --clock cpu --threads 1 --batch 8 \
        --cnn-filters 8,16,32,32,32,32,32 --rnn-hidden 32  # realistic vs latent augmentations (#16)

Model comparison: one training step (forward, backward, Adam) at batch 24 on
input [24, 628, 128] (the reference takes [24, 1, 628, 128]), with the
reference's loss (frame BCE on the strong quarter + clip BCE on the weak
quarter), alternating A/B in one process with the same threads, after
warm-up; prints medians and the ratio, and the achieved GFLOP/s of our step
(FLOPs counted with torch.utils.flop_counter).

Host memory (`sed/training/host_memory.py`): the trainer keeps freed memory for reuse
on the CPU (glibc mallopt, process-wide). `--host-memory default|reuse` sets
it for this process, so that the A/B pair runs under one setting;
`--host-memory both` runs the comparison once under each setting in two
fresh processes, one after the other, and also prints the ratio as shipped:
ours with reuse (what `sed.train` and every trial run) to the reference with
the default allocator (what its own scripts run), with the peak RSS of each
process.

Objective ratios: one step of `sed.training.objectives.compute_losses` + backward + Adam
(+ EMA update for mt) for each augmentation x location and regulariser, as a
ratio to `none` (supervised only), all interleaved in one process.
`--realistic` does the same for the realistic input augmentations (band
filter gains, noise at an SNR; random, adversarial, VAT) beside the paper's
latent ones; `--cnn-filters` / `--rnn-hidden` narrow the model for a quick run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

from bench_common import ObjectiveStep, random_batch  # noqa: E402

from sed.config import TrainConfig  # noqa: E402
from sed.nn.model import CRNN, CRNNConfig, count_parameters  # noqa: E402
from sed.training.host_memory import reuse_freed_memory  # noqa: E402
from sed.training.objectives import Batch, update_ema  # noqa: E402

REFERENCE_KWARGS = dict(
    n_in_channel=1,
    nclass=10,
    attention=True,
    n_RNN_cell=128,
    n_layers_RNN=2,
    activation="glu",
    dropout=0.5,
    kernel_size=7 * [3],
    padding=7 * [1],
    stride=7 * [1],
    nb_filters=[16, 32, 64, 128, 128, 128, 128],
    pooling=[[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]],
)

OBJECTIVES: list[tuple[str, dict]] = [
    ("none", dict(augmentation="none", regularization="none")),
    ("mt snr_noise input (baseline)", dict(augmentation="snr_noise", locations="input", regularization="mt")),
    ("l2 snr_noise input", dict(augmentation="snr_noise", locations="input", regularization="l2")),
    ("mt random input", dict(augmentation="random", locations="input", regularization="mt")),
    ("l2 random input", dict(augmentation="random", locations="input", regularization="l2")),
    ("l2 random cnn", dict(augmentation="random", locations="cnn", regularization="l2")),
    ("l2 random rnn", dict(augmentation="random", locations="rnn", regularization="l2")),
    ("l2 adversarial input", dict(augmentation="adversarial", locations="input", regularization="l2")),
    ("l2 adversarial cnn", dict(augmentation="adversarial", locations="cnn", regularization="l2")),
    ("l2 adversarial rnn", dict(augmentation="adversarial", locations="rnn", regularization="l2")),
    ("l2 vat input", dict(augmentation="vat", locations="input", regularization="l2")),
    ("l2 vat cnn", dict(augmentation="vat", locations="cnn", regularization="l2")),
    ("l2 vat rnn", dict(augmentation="vat", locations="rnn", regularization="l2")),
    ("l2 mixup input", dict(augmentation="mixup", locations="input", regularization="l2")),
    ("l2 mixup cnn", dict(augmentation="mixup", locations="cnn", regularization="l2")),
    ("l2 mixup rnn", dict(augmentation="mixup", locations="rnn", regularization="l2")),
    ("none + l2 only", dict(augmentation="none", regularization="l2")),
]

#: Issue #16: the realistic input augmentations beside the paper's latent ones (all l2 but one mt).
REALISTIC_OBJECTIVES: list[tuple[str, dict]] = [
    ("none", dict(augmentation="none", regularization="none")),
    ("l2 random input", dict(augmentation="random", locations="input", regularization="l2")),
    ("l2 random latent", dict(augmentation="random", locations="latent", regularization="l2")),
    ("l2 adversarial input", dict(augmentation="adversarial", locations="input", regularization="l2")),
    ("l2 adversarial latent", dict(augmentation="adversarial", locations="latent", regularization="l2")),
    ("l2 vat input", dict(augmentation="vat", locations="input", regularization="l2")),
    ("l2 snr_noise input", dict(augmentation="snr_noise", locations="input", regularization="l2")),
    ("l2 snr_adversarial input", dict(augmentation="snr_adversarial", locations="input", regularization="l2")),
    ("l2 filter input", dict(augmentation="filter", locations="input", regularization="l2")),
    ("l2 filter_adversarial input", dict(augmentation="filter_adversarial", locations="input", regularization="l2")),
    ("l2 filter_vat input", dict(augmentation="filter_vat", locations="input", regularization="l2")),
    ("mt filter input", dict(augmentation="filter", locations="input", regularization="mt")),
]


#: The clock of `median_time`: wall time (perf_counter), or the process's CPU time
#: (`--clock cpu`: on a machine shared with other jobs, with one thread, the CPU time a
#: step takes is not inflated by the time it waits for a core).
CLOCK: Callable[[], float] = time.perf_counter


def median_time(fn: Callable[[], None], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return times


def load_reference(models_dir: Path) -> nn.Module:
    models_dir = models_dir.resolve()
    if not (models_dir / "CRNN.py").is_file():
        raise SystemExit(f"{models_dir} has no CRNN.py: pass the reference's baseline/models directory")
    sys.path.insert(0, str(models_dir.parent))
    from models.CRNN import CRNN as ReferenceCRNN  # type: ignore[import-not-found]

    return ReferenceCRNN(**REFERENCE_KWARGS)


def supervised_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, reference: bool) -> None:
    x = batch.features.unsqueeze(1) if reference else batch.features
    strong, weak = model(x)
    bce = nn.functional.binary_cross_entropy
    loss = bce(strong[batch.strong_mask], batch.strong_targets[batch.strong_mask]) + bce(
        weak[batch.weak_mask], batch.weak_targets[batch.weak_mask]
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def step_flops(model: nn.Module, batch: Batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with FlopCounterMode(display=False) as counter:
        supervised_step(model, optimizer, batch, reference=False)
    return float(counter.get_total_flops())


def compare_models(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    batch = random_batch(args.batch)
    ours = CRNN(CRNNConfig(dropout_impl=args.dropout_impl)).train()
    reference = load_reference(Path(args.reference)).train()
    n_ref = sum(p.numel() for p in reference.parameters() if p.requires_grad)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
    opt_ref = torch.optim.Adam(reference.parameters(), lr=1e-3)
    run_ours = lambda: supervised_step(ours, opt_ours, batch, reference=False)  # noqa: E731
    run_ref = lambda: supervised_step(reference, opt_ref, batch, reference=True)  # noqa: E731
    for _ in range(args.warmup):
        run_ours()
        run_ref()
    t_ours, t_ref = [], []
    for _ in range(args.reps):  # alternate A/B
        t_ours += median_time(run_ours, 1)
        t_ref += median_time(run_ref, 1)
    flops = step_flops(ours, batch)
    m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
    result = {
        "ours_parameters": count_parameters(ours),
        "reference_parameters": n_ref,
        "ours_median_s": m_ours,
        "reference_median_s": m_ref,
        "ratio": m_ours / m_ref,
        "ours_times": t_ours,
        "reference_times": t_ref,
        "step_gflop": flops / 1e9,
        "ours_gflops_per_s": flops / 1e9 / m_ours,
    }
    print(
        f"ours {m_ours:.3f} s  reference {m_ref:.3f} s  ratio {m_ours / m_ref:.3f}  "
        f"({flops / 1e9:.0f} GFLOP/step, ours {flops / 1e9 / m_ours:.0f} GFLOP/s); "
        f"params {count_parameters(ours):,} vs {n_ref:,}",
        flush=True,
    )
    return result


def objective_step(overrides: dict, batch: Batch, dropout_impl: str, model: dict | None = None) -> ObjectiveStep:
    cfg = dataclasses.replace(TrainConfig(), dropout_impl=dropout_impl, **(model or {}), **overrides).validate()
    return ObjectiveStep(cfg, batch)


def model_overrides(args: argparse.Namespace) -> dict:
    """--cnn-filters / --rnn-hidden as TrainConfig fields (empty: the reference CRNN)."""
    out: dict = {}
    if args.cnn_filters:
        out["cnn_filters"] = tuple(int(v) for v in args.cnn_filters.split(","))
    if args.rnn_hidden:
        out["rnn_hidden"] = args.rnn_hidden
    return out


def compare_objectives(args: argparse.Namespace, objectives: list[tuple[str, dict]] = OBJECTIVES) -> dict:
    batch = random_batch(args.batch)
    model = model_overrides(args)
    runs = {name: objective_step(ov, batch, args.dropout_impl, model) for name, ov in objectives}
    for run in runs.values():
        for _ in range(args.warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.reps):  # interleaved
        for name, run in runs.items():
            times[name] += median_time(run, 1)
    base = statistics.median(times["none"])
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"median_s": med, "ratio_to_none": med / base, "times": ts}
        print(f"{name:<28} {med:7.3f} s  x{med / base:.2f}", flush=True)
    if "mt snr_noise input (baseline)" not in times:
        return out
    mt = statistics.median(times["mt snr_noise input (baseline)"])
    l2 = statistics.median(times["l2 snr_noise input"])
    print(f"l2 step / mt step (snr_noise input, Table 1 rows 3 / 2): {l2 / mt:.2f}", flush=True)
    out["l2_over_mt"] = l2 / mt
    return out


def split_baseline(args: argparse.Namespace) -> dict:
    """The baseline (mt) step split into student forward, teacher forward, backward, Adam + EMA."""
    torch.manual_seed(0)
    student = CRNN(CRNNConfig(dropout_impl=args.dropout_impl)).train()
    teacher = CRNN(CRNNConfig(dropout_impl=args.dropout_impl)).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    batch = random_batch(args.batch)
    bce = nn.functional.binary_cross_entropy
    parts: dict[str, list[float]] = {"student forward": [], "teacher forward": [], "backward": [], "adam + ema": []}
    for rep in range(args.warmup + args.reps):
        t0 = time.perf_counter()
        strong, weak = student(batch.features)
        t1 = time.perf_counter()
        with torch.no_grad():
            noisy = batch.features + 0.0316 * torch.randn_like(batch.features)
            t_strong, t_weak = teacher(noisy)
        t2 = time.perf_counter()
        loss = (
            bce(strong[batch.strong_mask], batch.strong_targets[batch.strong_mask])
            + bce(weak[batch.weak_mask], batch.weak_targets[batch.weak_mask])
            + 2.0 * (nn.functional.mse_loss(strong, t_strong) + nn.functional.mse_loss(weak, t_weak))
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        update_ema(teacher, student, rep + 1, 0.999)
        t4 = time.perf_counter()
        if rep >= args.warmup:
            for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key].append(value)
    out = {k: statistics.median(v) for k, v in parts.items()}
    out["total"] = sum(out.values())
    for k, v in out.items():
        print(f"baseline step, {k:<16} {v:7.3f} s", flush=True)
    return out


def peak_memory(args: argparse.Namespace) -> dict:
    """Peak RSS of a fresh process running 2 steps of each objective."""
    out = {}
    for name, _ in OBJECTIVES:
        cmd = [
            sys.executable,
            __file__,
            "--one-objective",
            name,
            "--batch",
            str(args.batch),
            "--threads",
            str(args.threads),
            "--dropout-impl",
            args.dropout_impl,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(res.stderr)
        peak_mb = float(res.stdout.strip().splitlines()[-1])
        out[name] = peak_mb
        print(f"{name:<28} peak RSS {peak_mb:8.0f} MB", flush=True)
    return out


def compare_allocators(args: argparse.Namespace) -> None:
    """The model comparison under each allocator setting, each in a fresh process."""
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in ("default", "reuse"):
            out = Path(tmp) / f"{setting}.json"
            cmd = [
                sys.executable,
                __file__,
                "--reference",
                str(args.reference),
                "--host-memory",
                setting,
                "--batch",
                str(args.batch),
                "--reps",
                str(args.reps),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(args.threads),
                "--dropout-impl",
                args.dropout_impl,
                "--json",
                str(out),
            ]
            subprocess.run(cmd, check=True)
            results[setting] = json.loads(out.read_text())
    d, r = results["default"]["models"], results["reuse"]["models"]
    shipped = r["ours_median_s"] / d["reference_median_s"]
    print(
        f"as shipped: ours (reuse) {r['ours_median_s']:.3f} s / reference (default allocator) "
        f"{d['reference_median_s']:.3f} s = {shipped:.3f}; same code, default allocator {d['ratio']:.3f}; "
        f"both with reuse {r['ratio']:.3f}; peak RSS of the process {results['default']['peak_rss_mb_process']:.0f} "
        f"MB (default) vs {results['reuse']['peak_rss_mb_process']:.0f} MB (reuse)",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps({"as_shipped_ratio": shipped, **results}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="the reference's baseline/models directory")
    parser.add_argument("--objectives", action="store_true", help="objective ratios vs supervised")
    parser.add_argument("--memory", action="store_true", help="peak RSS per objective")
    parser.add_argument("--realistic", action="store_true", help="realistic vs latent augmentations (issue #16)")
    parser.add_argument("--cnn-filters", help="narrower CNN for a quick run, e.g. 8,16,32,32,32,32,32")
    parser.add_argument("--rnn-hidden", type=int, help="narrower BiGRU for a quick run")
    parser.add_argument("--split", action="store_true", help="baseline step: forward / teacher / backward / Adam")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dropout-impl", default="bits", choices=["bits", "torch"])
    parser.add_argument(
        "--host-memory",
        default="reuse",
        choices=["default", "reuse", "both"],
        help="allocator setting of the process (sed/training/host_memory.py); both: two runs",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall time, or the process's CPU time (a shared machine; use --threads 1)",
    )
    parser.add_argument("--one-objective", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host_memory == "both":
        if not args.reference:
            raise SystemExit("--host-memory both needs --reference")
        return compare_allocators(args)
    if args.host_memory == "reuse":
        reuse_freed_memory()
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.process_time
    if args.one_objective:
        overrides = dict(OBJECTIVES)[args.one_objective]
        run = objective_step(overrides, random_batch(args.batch), args.dropout_impl)
        run()
        run()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return
    report = {
        "host_memory": args.host_memory,
        "machine": platform.processor() or platform.machine(),
        "cores": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch": args.batch,
        "reps": args.reps,
        "clock": args.clock,
    }
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
        f"host memory {args.host_memory}, {args.clock} clock",
        flush=True,
    )
    if args.reference:
        report["models"] = compare_models(args)
    if args.split:
        report["split"] = split_baseline(args)
    if args.objectives:
        report["objectives"] = compare_objectives(args)
    if args.realistic:
        report["model"] = {k: list(v) if isinstance(v, tuple) else v for k, v in model_overrides(args).items()}
        report["realistic"] = compare_objectives(args, REALISTIC_OBJECTIVES)
    if args.memory:
        report["peak_rss_mb"] = peak_memory(args)
    report["peak_rss_mb_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
