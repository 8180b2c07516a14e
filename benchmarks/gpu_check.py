"""GPU training step: the CUDA-graph step (sed/training/fast_step.py) against the eager one, per objective.

    python benchmarks/gpu_check.py --json gpu.json            # everything (~4-6 min on one H200)
    python benchmarks/gpu_check.py --json gpu.json --skip-packing

Full-size CRNN, batch 24, random inputs already on the GPU (bench_common.random_batch).

1. Every Table 1 preset (and the realistic ones): steps/s of the eager step
   (compute_losses + backward + Adam + EMA, as the trainer before sed.training.fast_step)
   and of the graph step; the seconds to the first replay (eager warm-up steps
   + capture); memory of one trial (peak allocated and reserved by its models,
   optimizer and graphs).
2. Losses: on the same weights, batch and random draws (seeded generators),
   one step of the eager step in strict fp32 (TF32 off) against a graph
   replay (the process's default precision: cuDNN TF32 on, as PyTorch's
   default) and against the eager step in that default precision.
3. Variants of the graph step for the baseline and supervised objectives:
   strict fp32 (TF32 off), cuDNN autotuning (`cudnn.benchmark`).
4. Trials packed on one GPU: N processes (1, 2, 4, 8), each one trial of the
   baseline objective, started together, steps/s per trial and in total, for
   the graph step (and the eager step at 1 and 4, the earlier figure);
   then N trials in one process on N CUDA streams.

Everything is written to --json; a short table is printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import ObjectiveStep, random_batch  # noqa: E402

from sed.augment.perturb import LogMelSpace  # noqa: E402
from sed.config import TrainConfig  # noqa: E402
from sed.features.scaler import Scaler  # noqa: E402
from sed.nn.model import build_model  # noqa: E402
from sed.presets import PRESETS, REALISTIC_PRESETS  # noqa: E402
from sed.training.fast_step import LOSS_NAMES, FastStep  # noqa: E402
from sed.training.objectives import compute_losses  # noqa: E402

BATCH = 24
N_CLASSES = 10
SPACE = LogMelSpace(Scaler(np.full(128, -40.0), np.full(128, 12.0)))


CUDA = torch.cuda.is_available()


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def empty_cache() -> None:
    if CUDA:
        torch.cuda.empty_cache()


def log(*args: Any) -> None:
    print(*args, flush=True)


def set_tf32(on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


TINY = False


def shrink(cfg: TrainConfig, tiny: bool) -> TrainConfig:
    return dataclasses.replace(cfg, cnn_filters=(4, 8, 8), rnn_hidden=8, bn_eps=1e-5) if tiny else cfg


def batch_of(device: torch.device):
    if not TINY:
        return random_batch(BATCH, device)
    b = random_batch(8, device)
    b.features = b.features[:, :64].contiguous()
    b.strong_targets = b.strong_targets[:, :16].contiguous()
    return b


def rate(fn: Callable[[], Any], n: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return n / (time.perf_counter() - start)


def models(cfg: TrainConfig, device: torch.device, seed: int = 0):
    torch.manual_seed(seed)
    student = build_model(cfg, N_CLASSES).to(device).train()
    teacher = None
    if cfg.has_teacher:
        teacher = build_model(cfg, N_CLASSES).to(device).train()
        for p in teacher.parameters():
            p.requires_grad_(False)
    return student, teacher


def n_keys(fast: FastStep) -> int:
    points = fast.recorder.choice_points or []
    return int(np.prod([len(p) for p in points])) if points else 1


def build_fast(
    cfg: TrainConfig,
    batch,
    device: torch.device,
    max_steps: int = 40,
    autocast: torch.dtype | None = None,
) -> tuple[FastStep, float, int]:
    """A captured graph step (every choice combination): the step, seconds to get there, steps run."""
    student, teacher = models(cfg, device)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    fast = FastStep(
        student,
        teacher,
        optimizer,
        cfg,
        random.Random(0),
        SPACE,
        rampup_steps=0.0,
        capacity=64,
        autocast=autocast,
    )
    sync()
    start = time.perf_counter()
    steps = 0

    def ready() -> bool:
        if not fast.capture:  # the CPU dry run: no graphs
            return steps >= 2
        return fast.first_done and len(fast.graphs) >= n_keys(fast)

    while steps < max_steps and not ready():
        fast.step(batch)
        steps += 1
    sync()
    return fast, time.perf_counter() - start, steps


def loss_check(cfg: TrainConfig, fast: FastStep, batch, device: torch.device) -> dict[str, Any]:
    """One step's loss terms: eager strict fp32 vs graph replay vs eager default precision, same draws."""
    state_s = {k: v.detach().clone() for k, v in fast.student.state_dict().items()}
    state_t = None if fast.teacher is None else {k: v.detach().clone() for k, v in fast.teacher.state_dict().items()}

    def eager(tf32: bool) -> dict[str, float]:
        student, teacher = models(cfg, device)
        student.load_state_dict(state_s)
        if teacher is not None:
            teacher.load_state_dict(state_t)
        set_tf32(tf32)
        torch.manual_seed(11)
        terms = compute_losses(student, teacher, batch, cfg, cfg.consistency_weight, random.Random(11), SPACE)
        values = terms.as_floats()
        set_tf32(DEFAULT_TF32)
        return {k: values[k] for k in LOSS_NAMES}

    strict = eager(False)
    default = eager(DEFAULT_TF32)
    graphs_before = len(fast.graphs)
    torch.manual_seed(11)
    fast.rng.seed(11)
    fast.set_step(0)
    fast.step(batch)
    replayed = len(fast.graphs) == graphs_before and graphs_before > 0
    row = fast.read_history(1)[0]
    graph = dict(zip(LOSS_NAMES, (float(v) for v in row)))

    def rel(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in LOSS_NAMES if b[k] != 0.0 or a[k] != 0.0}

    r_graph, r_default = rel(graph, strict), rel(default, strict)
    return {
        "eager_fp32": strict,
        "eager_default": default,
        "graph": graph,
        "replayed": replayed,
        "rel_graph_vs_fp32": r_graph,
        "rel_eager_default_vs_fp32": r_default,
        "max_rel_graph_vs_fp32": max(r_graph.values()),
        "max_rel_eager_default_vs_fp32": max(r_default.values()),
    }


def objective(name: str, cfg: TrainConfig, device: torch.device, n_fast: int, n_eager: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    batch = batch_of(device)
    try:
        torch.manual_seed(1)
        eager = ObjectiveStep(cfg, batch)
        out["eager_steps_per_s"] = rate(eager, n_eager)
        del eager
    except Exception as error:  # a failure is a result: record it, go on
        out["eager_error"] = repr(error)
    empty_cache()
    base = torch.cuda.memory_allocated() if CUDA else 0
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    reserved0 = torch.cuda.memory_reserved() if CUDA else 0
    try:
        fast, seconds, steps = build_fast(cfg, batch, device)
        out.update(
            first_replay_s=seconds, warmup_steps=steps, graphs=len(fast.graphs), capture_error=fast.capture_error
        )
        out["graph_steps_per_s"] = rate(lambda: fast.step(batch), n_fast)
        if CUDA:
            out["peak_allocated_gib"] = (torch.cuda.max_memory_allocated() - base) / 2**30
            out["reserved_gib"] = (torch.cuda.memory_reserved() - reserved0) / 2**30
        out["loss_check"] = loss_check(cfg, fast, batch, device)
        fast = None  # its graphs and pools go
    except Exception as error:
        out["graph_error"] = repr(error)
    if "eager_steps_per_s" in out and "graph_steps_per_s" in out:
        out["speedup"] = out["graph_steps_per_s"] / out["eager_steps_per_s"]
    empty_cache()
    lc = out.get("loss_check", {})
    log(
        f"{name:<28} eager {out.get('eager_steps_per_s', float('nan')):6.1f}  graph "
        f"{out.get('graph_steps_per_s', float('nan')):6.1f} steps/s  first replay {out.get('first_replay_s', float('nan')):5.2f} s  "
        f"mem {out.get('peak_allocated_gib', float('nan')):.2f} GiB  rel(graph, fp32) "
        f"{lc.get('max_rel_graph_vs_fp32', float('nan')):.1e}  rel(eager tf32, fp32) "
        f"{lc.get('max_rel_eager_default_vs_fp32', float('nan')):.1e}  replayed={lc.get('replayed')}"
        + (
            f"  ERROR {out.get('graph_error') or out.get('eager_error')}"
            if "graph_error" in out or "eager_error" in out
            else ""
        )
        + (f"  CAPTURE FAILED {out['capture_error']}" if out.get("capture_error") else "")
    )
    return out


def variants(device: torch.device, n_fast: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("baseline", "none"):
        cfg = shrink(PRESETS[name], TINY)
        batch = batch_of(device)
        for label, tf32, bench in (("strict_fp32", False, False), ("cudnn_benchmark", DEFAULT_TF32, True)):
            try:
                set_tf32(tf32)
                torch.backends.cudnn.benchmark = bench
                fast, _, _ = build_fast(cfg, batch, device)
                out[f"{name}/{label}"] = rate(lambda: fast.step(batch), n_fast)
                fast = None  # its graphs and pools go
            except Exception as error:
                out[f"{name}/{label}"] = repr(error)
            finally:
                set_tf32(DEFAULT_TF32)
                torch.backends.cudnn.benchmark = False
                empty_cache()
            log(f"variant {name}/{label}: {out[f'{name}/{label}']}")
    return out


def profile(device: torch.device, path: Path | None) -> dict[str, Any]:
    """Where the GPU time of one baseline step goes: the eager step's kernels (torch.profiler), per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cfg = PRESETS["baseline"]
    batch = batch_of(device)
    step = ObjectiveStep(cfg, batch)
    for _ in range(3):
        step()
    sync()
    n = 5
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            step()
        sync()
    events = prof.key_averages()
    rows = []
    for e in events:
        device_us = getattr(e, "self_device_time_total", None)
        if device_us is None:
            device_us = getattr(e, "self_cuda_time_total", 0)
        if device_us:
            rows.append((e.key, device_us / n / 1000.0, e.count // n))
    rows.sort(key=lambda r: -r[1])
    total_ms = sum(r[1] for r in rows)
    if path is not None:
        try:
            path.write_text(events.table(sort_by="self_device_time_total", row_limit=40))
        except Exception as error:  # the table is a convenience; the rows below are the result
            log(f"profile table: {error!r}")
    log(f"profile: GPU kernel time of one eager baseline step {total_ms:.2f} ms")
    for key, ms, count in rows[:12]:
        log(f"  {ms:7.3f} ms  x{count:<4d} {key[:90]}")
    return {"gpu_ms_per_step": total_ms, "top": [{"name": k, "ms": ms, "calls": c} for k, ms, c in rows[:40]]}


def compiled_blocks(device: torch.device, n_fast: int) -> dict[str, Any]:
    """Experiment: each CNN block's conv -> BatchNorm -> gated unit under torch.compile, inside the graph step."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = 256
    torch._dynamo.config.accumulated_cache_size_limit = 4096
    out: dict[str, Any] = {}
    for name in ("baseline", "none"):
        cfg = PRESETS[name]
        batch = batch_of(device)
        try:
            start = time.perf_counter()
            fast, _, _ = build_fast(cfg, batch, device, max_steps=0)
            for model in (fast.student, fast.teacher):
                if model is None:
                    continue
                for block in model.cnn.blocks:
                    core = torch.compile(torch.nn.Sequential(block.conv, block.bn, block.gate), dynamic=False)
                    block.forward = lambda x, b=block, c=core: b.pool(b.dropout(c(x)))  # type: ignore[method-assign]
            steps = 0
            while steps < 40 and not (fast.first_done and len(fast.graphs) >= n_keys(fast)):
                fast.step(batch)
                steps += 1
            sync()
            out[name] = {
                "first_replay_s": time.perf_counter() - start,
                "graph_steps_per_s": rate(lambda: fast.step(batch), n_fast),
            }
            fast = None  # its graphs and pools go
        except Exception as error:
            out[name] = {"error": repr(error)[:2000]}
        empty_cache()
        log(f"compiled blocks {name}: {out[name]}")
    return out


def bf16(device: torch.device, n_fast: int) -> dict[str, Any]:
    """Experiment: the graph step under bf16 autocast: steps/s and loss terms against strict fp32 eager."""
    out: dict[str, Any] = {}
    for name in ("baseline", "none", "random-latent-l2"):
        cfg = PRESETS[name]
        batch = batch_of(device)
        try:
            fast, seconds, _ = build_fast(cfg, batch, device, autocast=torch.bfloat16)
            out[name] = {
                "graph_steps_per_s": rate(lambda: fast.step(batch), n_fast),
                "loss_check": loss_check(cfg, fast, batch, device),
            }
            fast = None  # its graphs and pools go
        except Exception as error:
            out[name] = {"error": repr(error)[:2000]}
        empty_cache()
        lc = out[name].get("loss_check", {})
        log(
            f"bf16 graph {name}: {out[name].get('graph_steps_per_s', float('nan')):.1f} steps/s, "
            f"rel(bf16 graph, fp32) {lc.get('max_rel_graph_vs_fp32', float('nan')):.1e} {lc.get('rel_graph_vs_fp32')}"
        )
    return out


# -- packing --------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if CUDA else "cpu")
    cfg = shrink(PRESETS[args.objective], args.tiny)
    batch = batch_of(device)
    if args.mode == "graph":
        fast, _, _ = build_fast(cfg, batch, device)
        step: Callable[[], Any] = lambda: fast.step(batch)  # noqa: E731
    else:
        step = ObjectiveStep(cfg, batch)
        for _ in range(3):
            step()
    sync()
    ready = Path(args.ready_dir)
    (ready / f"{os.getpid()}.ready").touch()
    deadline = time.time() + 100
    while len(list(ready.glob("*.ready"))) < args.n and time.time() < deadline:
        time.sleep(0.01)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        step()
        n += 1
    sync()
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "steps_per_s": n / elapsed,
                "steps": n,
                "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if CUDA else 0.0,
            }
        )
    )


def packing(mode: str, counts: tuple[int, ...], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in counts:
        with tempfile.TemporaryDirectory() as ready:
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        "--mode",
                        mode,
                        "--n",
                        str(n),
                        "--ready-dir",
                        ready,
                        "--seconds",
                        str(seconds),
                    ]
                    + (["--tiny"] if TINY else []),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(n)
            ]
            try:
                results = [json.loads(p.communicate(timeout=150)[0].strip().splitlines()[-1]) for p in procs]
            except Exception as error:
                for p in procs:
                    p.kill()
                out[n] = {"error": repr(error)}
                log(f"{mode}: {n} trials per GPU: {error!r}")
                continue
        per = [r["steps_per_s"] for r in results]
        out[n] = {"per_trial": per, "total": sum(per), "peak_reserved_gib": [r["peak_reserved_gib"] for r in results]}
        log(f"{mode}: {n} trials per GPU (processes): {sum(per) / n:6.1f} steps/s per trial, {sum(per):6.1f} in total")
    return out


def streams(counts: tuple[int, ...], seconds: float, device: torch.device) -> dict[str, Any]:
    """N graph-step trials in one process, each replayed on its own CUDA stream."""
    out: dict[str, Any] = {}
    cfg = shrink(PRESETS["baseline"], TINY)
    for n in counts:
        try:
            trials = []
            for _ in range(n):
                batch = batch_of(device)
                fast, _, _ = build_fast(cfg, batch, device)
                trials.append((fast, batch, torch.cuda.Stream(device) if CUDA else None))
            sync()
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for fast, batch, stream in trials:
                    with torch.cuda.stream(stream):  # None on the CPU: no-op
                        fast.step(batch)
                count += 1
            sync()
            elapsed = time.perf_counter() - start
            out[n] = {"per_trial": count / elapsed, "total": n * count / elapsed}
            log(
                f"streams: {n} trials in one process: {count / elapsed:6.1f} steps/s per trial, {n * count / elapsed:6.1f} in total"
            )
            del trials
        except Exception as error:
            out[n] = {"error": repr(error)}
            log(f"streams: {n}: {error!r}")
        empty_cache()
    return out


DEFAULT_TF32 = torch.backends.cudnn.allow_tf32


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--mode", default="graph", choices=("graph", "eager"))
    parser.add_argument("--objective", default="baseline")
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--ready-dir", default="")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fast-steps", type=int, default=200)
    parser.add_argument("--eager-steps", type=int, default=40)
    parser.add_argument("--skip-packing", action="store_true")
    parser.add_argument("--only-packing", action="store_true", help="part 4 only")
    parser.add_argument("--experiments", action="store_true", help="bf16 graph step, trials on streams, eager x4")
    parser.add_argument("--skip-realistic", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile'd CNN blocks (experiment)")
    parser.add_argument("--objectives", default="", help="comma-separated preset names (default: all)")
    parser.add_argument("--tiny", action="store_true", help="a narrow CRNN and short input (a CPU dry run)")
    args = parser.parse_args()
    global TINY
    TINY = args.tiny
    if args.worker:
        worker(args)
        return
    device = torch.device("cuda" if CUDA else "cpu")
    total_start = time.perf_counter()
    report: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0) if CUDA else "none (CPU dry run)",
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "default_cudnn_tf32": DEFAULT_TF32,
        "default_matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "batch": BATCH,
    }
    log(report)

    def save() -> None:
        report["total_seconds"] = time.perf_counter() - total_start
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str))

    table = dict(PRESETS) if args.skip_realistic else {**PRESETS, **REALISTIC_PRESETS}
    table = {name: shrink(cfg, args.tiny) for name, cfg in table.items()}
    if args.objectives:
        table = {name: table[name] for name in args.objectives.split(",")}
    report["objectives"] = {}
    for name, cfg in table.items() if not args.only_packing else ():
        report["objectives"][name] = objective(name, cfg, device, args.fast_steps, args.eager_steps)
        save()
    if not args.only_packing:
        report["variants"] = variants(device, args.fast_steps)
        save()
        try:
            report["profile"] = profile(device, None if args.json is None else args.json.with_suffix(".profile.txt"))
        except Exception as error:
            report["profile"] = {"error": repr(error)}
        save()
    if not args.skip_packing:
        report["packing_graph"] = packing("graph", (1, 2, 4, 8), args.seconds)
        save()
        report["packing_eager"] = packing("eager", (1, 4), args.seconds)
        save()
        report["packing_streams"] = streams((1, 2, 4, 8), args.seconds, device)
        save()
    if args.experiments:
        report["bf16"] = bf16(device, args.fast_steps)
        save()
        report["packing_streams"] = streams((1, 2, 4), args.seconds, device)
        save()
        report["packing_eager"] = packing("eager", (4,), args.seconds)
        save()
    if args.compile:
        report["compiled_blocks"] = compiled_blocks(device, args.fast_steps)
    save()
    log(f"\ntotal {report['total_seconds']:.0f} s")
    log(f"{'objective':<28} {'eager':>7} {'graph':>7} {'x':>5} {'GiB':>5} {'rel fp32':>9}")
    for name, o in report["objectives"].items():
        lc = o.get("loss_check", {})
        log(
            f"{name:<28} {o.get('eager_steps_per_s', float('nan')):7.1f} {o.get('graph_steps_per_s', float('nan')):7.1f} "
            f"{o.get('speedup', float('nan')):5.2f} {o.get('peak_allocated_gib', float('nan')):5.2f} "
            f"{lc.get('max_rel_graph_vs_fp32', float('nan')):9.1e}"
        )


if __name__ == "__main__":
    main()
