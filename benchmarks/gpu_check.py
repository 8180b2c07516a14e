"""GPU path check and throughput: the same training code on CUDA.

    python benchmarks/gpu_check.py --json gpu.json

1. Every Table 1 preset: one full-size training step (compute_losses +
   backward + Adam, + EMA for mt) on CUDA at batch 24 gives finite losses;
   the same step under bf16 autocast (`amp=true`) gives losses within a few
   percent of fp32.
2. Steps/s of the full CRNN at batch 24 (fp32 and bf16 autocast) for
   supervised, the baseline (mt) and l2 + latent random / adversarial / VAT.
3. Examples/s at growing batch sizes, up to the largest that fits (or 1536).
4. Trials sharing one GPU: N processes (1, 2, 4, 8) each training at
   batch 24; steps/s per trial and in total.

Uses only sed.nn.model / sed.training.objectives (no dataset needed on the GPU machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from bench_common import ObjectiveStep, random_batch  # noqa: E402

from sed.config import TrainConfig  # noqa: E402
from sed.presets import PRESETS  # noqa: E402


def Step(cfg: TrainConfig, device: torch.device, batch: int, amp: bool) -> ObjectiveStep:
    return ObjectiveStep(cfg, random_batch(batch, device), amp=amp)


def steps_per_second(step: ObjectiveStep, n: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def worker(args: argparse.Namespace) -> None:
    device = torch.device("cuda")
    step = Step(PRESETS["baseline"], device, 24, amp=False)
    rate = steps_per_second(step, n=args.worker_steps)
    print(json.dumps({"steps_per_s": rate}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--worker-steps", type=int, default=40)
    parser.add_argument("--max-batch", type=int, default=1536)
    parser.add_argument("--only-sharing", action="store_true", help="run part 4 only")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    device = torch.device("cuda")
    report: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    print(report, flush=True)

    if args.only_sharing:
        report["sharing"] = sharing_test()
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str))
        return

    # 1. presets finite, AMP close to fp32
    presets = {}
    for name, cfg in PRESETS.items():
        torch.manual_seed(1)
        fp32 = Step(cfg, device, 24, amp=False)()
        torch.manual_seed(1)
        bf16 = Step(cfg, device, 24, amp=True)()
        finite = all(v == v and abs(v) != float("inf") for v in list(fp32.values()) + list(bf16.values()))
        rel = abs(bf16["loss_class"] - fp32["loss_class"]) / max(abs(fp32["loss_class"]), 1e-12)
        presets[name] = {"finite": finite, "fp32": fp32, "bf16": bf16, "class_loss_rel_diff": rel}
        print(
            f"{name:<24} finite={finite} loss_class fp32 {fp32['loss_class']:.5f} bf16 {bf16['loss_class']:.5f} rel {rel:.2e}",
            flush=True,
        )
    report["presets"] = presets

    # 2. steps/s at batch 24
    objectives = {
        "none": PRESETS["none"],
        "baseline (mt random input)": PRESETS["baseline"],
        "l2 random latent": PRESETS["random-latent-l2"],
        "l2 adversarial latent": PRESETS["adversarial-latent-l2"],
        "l2 vat input": PRESETS["vat-input-l2"],
        "l2 vat latent": PRESETS["vat-latent-l2"],
        "l2 mixup latent": PRESETS["mixup-latent-l2"],
    }
    rates = {}
    for name, cfg in objectives.items():
        r32 = steps_per_second(Step(cfg, device, 24, amp=False))
        r16 = steps_per_second(Step(cfg, device, 24, amp=True))
        rates[name] = {"fp32": r32, "bf16": r16}
        print(f"batch 24 {name:<28} {r32:6.1f} steps/s fp32  {r16:6.1f} steps/s bf16", flush=True)
    report["steps_per_s_batch24"] = rates

    # 3. batch sweep (baseline objective, fp32)
    sweep = {}
    batch = 24
    while batch <= args.max_batch:
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            rate = steps_per_second(Step(PRESETS["baseline"], device, batch, amp=False), n=8, warmup=2)
            peak = torch.cuda.max_memory_allocated() / 2**30
            sweep[batch] = {"steps_per_s": rate, "examples_per_s": rate * batch, "peak_gib": peak}
            print(
                f"batch {batch:5d}: {rate:6.2f} steps/s, {rate * batch:8.0f} examples/s, peak {peak:.1f} GiB",
                flush=True,
            )
        except torch.OutOfMemoryError:
            print(f"batch {batch}: out of memory", flush=True)
            break
        batch *= 2
    report["batch_sweep"] = sweep

    # 4. trials sharing the GPU (after releasing this process's cached memory)
    torch.cuda.empty_cache()
    report["sharing"] = sharing_test()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


def sharing_test() -> dict:
    sharing = {}
    for n in (1, 2, 4, 8):
        procs = [
            subprocess.Popen([sys.executable, __file__, "--worker"], stdout=subprocess.PIPE, text=True)
            for _ in range(n)
        ]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        per = [o["steps_per_s"] for o in outs]
        sharing[n] = {"per_trial": per, "total": sum(per)}
        print(f"{n} trials on one GPU: {sum(per) / n:6.1f} steps/s per trial, {sum(per):6.1f} in total", flush=True)
    return sharing


if __name__ == "__main__":
    main()
