"""Measured training-step costs the run plan (`search.plan`) estimates wall time from.

Every number is copied from benchmarks/README.md (section named beside it);
none is a guess. Where a combination was not measured, `step_seconds` derives
it from measured ones and says so (`StepCost.derived`).

- **H200 GPU, full-size CRNN, batch 24, fp32, one trial alone** ("GPU path",
  `benchmarks/gpu_check.py`, 2026-12-04, torch 2.11): steps/s per objective
  for the CUDA-graph step (`fast_step: auto`, the default on CUDA) and the
  eager step (`fast_step: off`, `amp`), measured in the same run; the
  trials-per-GPU sweep of the baseline objective for each step (per-trial
  steps/s with N processes sharing the GPU); the batch-size sweep
  (examples/s, eager, an earlier run).
- **CPU, full-size CRNN, batch 24, 2 threads** ("After issue #12" table of
  the training step time).
- **CPU, the demo's narrow CRNN, batch 8, 1 thread** ("CPU recipe of the
  demo", step time per objective), and its validation cost per epoch; the
  same CRNN at batch 16 and 64 mel bands (spaces/demo.yaml of 2026-12-06).
"""

from __future__ import annotations

from dataclasses import dataclass

from sed.config import TrainConfig

#: H200, full CRNN, batch 24, fp32, one trial, CUDA-graph step: steps/s per
#: (augmentation, location kind, regularization) ("GPU path", "The step on a GPU" table).
H200_GRAPH_STEPS_PER_S: dict[tuple[str, str, str], float] = {
    ("none", "-", "none"): 101.2,
    ("snr_noise", "input", "mt"): 73.8,  # the baseline (mt, random input noise)
    ("random", "input", "l2"): 49.3,
    ("random", "latent", "l2"): 81.3,
    ("adversarial", "latent", "l2"): 72.5,
    ("vat", "input", "mt"): 40.5,
    ("vat", "input", "l2"): 35.4,
    ("vat", "latent", "l2"): 72.4,
    ("mixup", "latent", "l2"): 85.9,
    ("filter", "input", "l2"): 49.4,
    ("filter_adversarial", "input", "l2"): 35.2,
    ("filter_vat", "input", "l2"): 35.2,
    ("snr_adversarial", "input", "l2"): 35.0,
}
#: ... the eager step, same run.
H200_STEPS_PER_S: dict[tuple[str, str, str], float] = {
    ("none", "-", "none"): 82.6,
    ("snr_noise", "input", "mt"): 61.6,
    ("random", "input", "l2"): 36.4,
    ("random", "latent", "l2"): 54.1,
    ("adversarial", "latent", "l2"): 46.9,
    ("vat", "input", "mt"): 34.1,
    ("vat", "input", "l2"): 31.6,
    ("vat", "latent", "l2"): 47.1,
    ("mixup", "latent", "l2"): 53.1,
    ("filter", "input", "l2"): 36.1,
    ("filter_adversarial", "input", "l2"): 30.3,
    ("filter_vat", "input", "l2"): 30.1,
    ("snr_adversarial", "input", "l2"): 30.3,
}
#: H200, baseline objective, batch 24: per-trial steps/s with N processes sharing the GPU
#: ("Trials packed on one GPU" table), graph step (N: 1, 2, 4, 8) and eager step (N: 1, 4).
H200_GRAPH_PACKING_PER_TRIAL: dict[int, float] = {1: 73.8, 2: 33.7, 4: 16.9, 8: 8.4}
H200_PACKING_PER_TRIAL: dict[int, float] = {1: 46.8, 4: 15.3}
#: H200, baseline objective, fp32: examples/s per batch size.
H200_EXAMPLES_PER_S: dict[int, float] = {
    24: 1224.0,
    48: 1655.0,
    96: 2024.0,
    192: 2205.0,
    384: 2335.0,
    768: 2389.0,
    1536: 2419.0,
}
#: CPU (2-core x86_64), full CRNN, batch 24, 2 threads, host memory reused: seconds per step.
CPU_FULL_STEP_S: dict[tuple[str, str, str], float] = {
    ("none", "-", "none"): 1.129,
    ("snr_noise", "input", "mt"): 1.614,
    ("snr_noise", "input", "l2"): 2.338,
    ("random", "input", "mt"): 1.645,
    ("random", "input", "l2"): 2.572,
    ("random", "latent", "l2"): (1.291 + 1.212) / 2,  # mean of cnn and rnn
    ("adversarial", "input", "l2"): 2.737,
    ("adversarial", "latent", "l2"): (1.399 + 1.178) / 2,
    ("vat", "input", "l2"): 3.208,
    ("vat", "latent", "l2"): (1.575 + 1.213) / 2,
    ("mixup", "input", "l2"): 2.175,
    ("mixup", "latent", "l2"): (1.375 + 1.092) / 2,
}
#: CPU, the demo's CRNN (cnn 8-16-16-16, GRU 16), batch 8, 1 thread: seconds per step.
CPU_DEMO_STEP_S: dict[tuple[str, str, str], float] = {
    ("none", "-", "none"): 0.255,
    ("random", "input", "l2"): 0.393,
    ("random", "latent", "l2"): 0.254,
    ("adversarial", "input", "l2"): 0.566,
    ("adversarial", "latent", "l2"): 0.302,
    ("vat", "input", "l2"): 0.559,
    ("vat", "latent", "l2"): 0.329,
    ("mixup", "input", "l2"): 0.367,
    ("mixup", "latent", "l2"): 0.204,
}
#: The demo's validation per epoch on the `default` data, 1 thread (~1 s; "CPU recipe of the demo").
CPU_DEMO_VAL_S = 1.0
#: The same CRNN at spaces/demo.yaml's batch and bands of 2026-12-06 (batch 16 = 4 weak + 8 unlabeled
#: + 4 strong, 64 mel bands, dropout 0), 1 thread, idle: seconds per step ("CPU step of the demo at
#: batch 16 and 64 mel bands"; `benchmarks/demo_recipe.py --step-times`).
CPU_DEMO_B16_M64_STEP_S: dict[tuple[str, str, str], float] = {
    ("none", "-", "none"): 0.194,
    ("random", "input", "l2"): 0.395,
    ("random", "latent", "l2"): 0.303,
    ("vat", "input", "l2"): 0.591,
    ("vat", "latent", "l2"): 0.341,
    ("mixup", "input", "l2"): 0.371,
    ("mixup", "latent", "l2"): 0.192,
    ("snr_noise", "input", "l2"): 0.378,
    ("filter", "input", "l2"): 0.374,
    ("filter_adversarial", "input", "l2"): 0.556,
}
#: ... and its validation: 0.378 s per 100 clips (median of 5, the same section).
CPU_DEMO_M64_VAL_S_PER_CLIP = 0.378 / 100
#: Two trials side by side on 2 cores: each 13 % slower than alone ("Two trials at a time on 2 cores").
CPU_SIDE_BY_SIDE_SLOWDOWN = 1.13
#: Full CRNN on the CPU: validation of 77 clips 1.6 s, 2 threads ("Validation cost per epoch").
CPU_FULL_VAL_S_PER_CLIP = 1.6 / 77
#: Event F1 of ~517 validation clips: ~0.5 s CPU; PSDS at 10 thresholds ~1.5 s ("Metric cost").
VAL_F1_S_PER_CLIP = 0.5 / 517
VAL_PSDS_S = 1.5

DEMO_FILTERS = (8, 16, 16, 16)
FULL_FILTERS = (16, 32, 64, 128, 128, 128, 128)
#: realistic augmentations cost what the paper's input perturbation with the same search costs
#: (benchmarks/README.md, "Realistic augmentations vs latent ones")
SAME_COST_AS = {
    "filter": "random",
    "snr_noise": "random",
    "filter_adversarial": "adversarial",
    "snr_adversarial": "adversarial",
    "filter_vat": "vat",
}


@dataclass(frozen=True)
class StepCost:
    """Seconds per training step of one trial, and how the figure was obtained."""

    seconds: float
    source: str
    derived: bool = False


def objective_key(cfg: TrainConfig) -> tuple[str, str, str]:
    """(augmentation, "input" / "latent" / "-", regularization) of a config."""
    if cfg.augmentation == "none":
        return ("none", "-", "none")
    locations = cfg.locations if isinstance(cfg.locations, str) else "+".join(cfg.locations)
    kind = "input" if "input" in str(locations) else "latent"
    return (cfg.augmentation, kind, cfg.regularization)


def model_kind(cfg: TrainConfig) -> str | None:
    """ "full" (the DCASE 2020 CRNN), "demo" (the demo's narrow one) or None (not measured)."""
    filters = tuple(cfg.cnn_filters)
    if filters == FULL_FILTERS and cfg.rnn_hidden == 128:
        return "full"
    if filters == DEMO_FILTERS and cfg.rnn_hidden == 16:
        return "demo"
    return None


def _lookup(table: dict[tuple[str, str, str], float], key: tuple[str, str, str]) -> tuple[float, bool]:
    """The table's figure for `key` (as step seconds or rate), or the nearest measured one and True."""
    if key in table:
        return table[key], False
    aug, kind, reg = key
    aug = SAME_COST_AS.get(aug, aug)
    for candidate in ((aug, kind, reg), (aug, kind, "l2"), ("random", kind, "l2"), ("random", "latent", "l2")):
        if candidate in table:
            return table[candidate], True
    return next(iter(table.values())), True


def graph_step(cfg: TrainConfig) -> bool:
    """Whether `cfg` trains with the CUDA-graph step on a GPU (TrainConfig.fast_step)."""
    return cfg.fast_step in ("auto", "graph") and not cfg.amp


def gpu_step_seconds(cfg: TrainConfig, trials_per_gpu: int) -> StepCost:
    """An H200 step of `cfg` with `trials_per_gpu` trials sharing the GPU (graph or eager step, as `cfg` trains)."""
    graph = graph_step(cfg)
    table = H200_GRAPH_STEPS_PER_S if graph else H200_STEPS_PER_S
    key = objective_key(cfg)
    rate, derived = _lookup(table, key)
    if derived and key[1] == "input" and (SAME_COST_AS.get(key[0], key[0]), "latent", "l2") in table:
        # an input location reruns the CNN: scale the latent rate by VAT's measured input / latent ratio
        rate = table[(SAME_COST_AS.get(key[0], key[0]), "latent", "l2")] * (
            table[("vat", "input", "l2")] / table[("vat", "latent", "l2")]
        )
    rate *= packing_factor(trials_per_gpu, graph)
    batch = cfg.batch_size
    if batch != 24:
        rate *= (_interpolate(H200_EXAMPLES_PER_S, batch) / batch) / (H200_EXAMPLES_PER_S[24] / 24)
    kind = model_kind(cfg)
    derived = derived or kind != "full"
    source = ("H200 graph-step table" if graph else "H200 eager-step table") + (
        " (nearest measured objective)" if derived else ""
    )
    if kind != "full":
        source += "; model not measured on the GPU: full-size rates (an upper bound on time); use --probe"
    return StepCost(1.0 / rate, source, derived)


def cpu_step_seconds(cfg: TrainConfig) -> StepCost:
    """A CPU step of `cfg` (one trial alone) from the full-size or demo table."""
    kind = model_kind(cfg)
    key = objective_key(cfg)
    if kind == "demo" and cfg.batch_size == 8:
        seconds, derived = _lookup(CPU_DEMO_STEP_S, key)
        return StepCost(seconds, "CPU demo-model table" + (" (nearest objective)" if derived else ""), derived)
    if kind == "demo" and cfg.batch_size == 16 and cfg.n_mels == 64:
        seconds, derived = _lookup(CPU_DEMO_B16_M64_STEP_S, key)
        source = "CPU demo-model table, batch 16, 64 mel bands"
        return StepCost(seconds, source + (" (nearest objective)" if derived else ""), derived)
    seconds, derived = _lookup(CPU_FULL_STEP_S, key)
    seconds *= cfg.batch_size / 24
    return StepCost(
        seconds,
        "CPU full-model table" + ("" if kind == "full" else ", model not measured: use --probe"),
        derived or kind != "full",
    )


def packing_factor(trials_per_gpu: int, graph: bool = True) -> float:
    """Per-trial speed with N trials on one GPU, relative to one alone (measured, baseline objective)."""
    table = H200_GRAPH_PACKING_PER_TRIAL if graph else H200_PACKING_PER_TRIAL
    n = max(1, int(trials_per_gpu))
    total = _interpolate({k: k * v for k, v in table.items()}, n)
    return (total / n) / table[1]


def _interpolate(table: dict[int, float], x: float) -> float:
    """Linear interpolation in a measured table, flat beyond its ends."""
    points = sorted(table.items())
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def validation_seconds(cfg: TrainConfig, val_clips: int, on_gpu: bool) -> float:
    """One epoch's validation: inference of the selection split and its event F1 (+ PSDS when on)."""
    kind = model_kind(cfg)
    if not on_gpu and kind == "demo" and cfg.n_mels == 64:
        seconds = CPU_DEMO_M64_VAL_S_PER_CLIP * val_clips
    elif not on_gpu and kind == "demo":
        seconds = CPU_DEMO_VAL_S * val_clips / 77
    elif on_gpu:
        seconds = VAL_F1_S_PER_CLIP * val_clips + val_clips / H200_EXAMPLES_PER_S[96] / 3  # forward ~1/3 of a step
    else:
        seconds = CPU_FULL_VAL_S_PER_CLIP * val_clips
    return seconds + (VAL_PSDS_S if cfg.compute_val_psds else 0.0)
