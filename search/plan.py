"""`python -m search.run --space S --plan`: what a run will cost, before it starts.

Without training anything: the trials of each stage, their epochs, the
steps per epoch of the dataset given, how many trials run at once on the
cluster (`search.packing`) and an estimate of the wall time and GPU-hours.

- **Steps per epoch**: what `sed.training.batches.MixedBatches` will do:
  the shortest of weak / unlabeled / synthetic-train clips divided by its
  share of a batch, capped by `max_steps_per_epoch`. The part sizes come
  from `--data` (read with `load_desed`), the embedded dataset's sizes, or
  DESED 2020's published sizes (`--plan-data desed2020`: weak 1578,
  unlabeled 14412, synthetic 2584, validation 1168, public eval 692;
  docs/reference.md): 263 steps per epoch at batch 24.
- **Epochs**: grid and FIFO trials run all `max_epochs`; under ASHA a
  trial continues past a rung when it is not below the rung's cutoff
  (Ray's rule: the (1 - 1/reduction_factor) percentile of the results
  recorded there so far), simulated over random trial rankings
  (`asha_epochs`, seeded).
- **Step time**: measured figures (`search.step_rates`, from
  benchmarks/README.md) per objective, model and packing, or the cluster's
  own when `--probe` timed a few steps there (`search.probe`).
- **Wall time**: the stage's trials list-scheduled on the slots the
  packing gives, plus per-trial start-up, per-stage Ray overhead and
  evaluation; **GPU-hours**: trial time x GPU share.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sed.config import TrainConfig, apply_overrides
from sed.training.batches import part_sizes

from . import step_rates
from .packing import Packing
from .space import Space
from .space.grid import discrete_combinations

OBJECTIVE_KEYS = ("augmentation", "locations", "regularization")
#: DESED 2020 part sizes (docs/reference.md, "Data"); 20 % of the synthetic set is the selection split.
DESED2020 = {"weak": 1578, "unlabeled": 14412, "synthetic": 2584, "validation": 1168, "public_eval": 692}
#: Seconds of a stage outside its trials on the 2-core machine: Ray's start, the Tuner, shutdown
#: (16 s one at a time, 33 s two at a time: benchmarks/README.md, "Two trials at a time on 2 cores").
STAGE_OVERHEAD_S = 25.0
#: Per trial: actor start, imports, reading the prepared data (benchmarks/README.md, "Trial start-up").
TRIAL_STARTUP_S = 3.0
#: The driver's imports, the data check and report.html (report: 5 s in process, "Report build").
DRIVER_OVERHEAD_S = 15.0
#: Building the embedded `default` data and its features from an empty cache (the demo: 27 s).
EMBEDDED_BUILD_S = 27.0
#: The second phase (`final.postprocess`), per final run and per clip of its validation + public-eval
#: scores, on the driver after the final stage: 42.3 s for the demo's 6 runs of 100 + 100 clips
#: (2026-12-05; benchmarks/README.md, "Plan vs real wall time"), linear in the clips ("Post-processing tuning").
POSTPROCESS_S_PER_CLIP = 42.3 / 6 / 200
SIMULATIONS = 400


@dataclass(frozen=True)
class DataSizes:
    """Clips per part as a run reads them (synthetic already split into train / selection)."""

    weak: int
    unlabeled: int
    synthetic_train: int
    synthetic_val: int
    public_eval: int
    source: str
    #: the validation part (DESED's validation set): the post-processing tunes on its scores
    validation: int = 0

    def steps_per_epoch(self, cfg: TrainConfig) -> int:
        n_weak, n_unlabeled, n_strong = part_sizes(cfg.batch_size, cfg.weak_fraction, cfg.strong_fraction)
        counts = [
            size // share
            for size, share in ((self.weak, n_weak), (self.unlabeled, n_unlabeled), (self.synthetic_train, n_strong))
            if share > 0
        ]
        steps = min(counts)
        return min(steps, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch is not None else steps


def desed2020_sizes(val_fraction: float = 0.2) -> DataSizes:
    syn = DESED2020["synthetic"]
    val = round(syn * val_fraction)
    return DataSizes(
        DESED2020["weak"],
        DESED2020["unlabeled"],
        syn - val,
        val,
        DESED2020["public_eval"],
        "DESED 2020 part sizes (docs/reference.md), synthetic split 80/20 (approximately)",
        DESED2020["validation"],
    )


def embedded_sizes(cfg: TrainConfig) -> DataSizes:
    from sed.data.desed import is_validation_file
    from sed.data.synth import SIZES, _clip_name

    sizes = SIZES[cfg.embedded_size]
    val = sum(
        is_validation_file(_clip_name("synthetic", i), cfg.split_seed, cfg.val_fraction) for i in range(sizes.synthetic)
    )
    return DataSizes(
        sizes.weak,
        sizes.unlabeled,
        sizes.synthetic - val,
        val,
        sizes.public_eval,
        f"embedded '{cfg.embedded_size}' dataset",
        sizes.validation,
    )


def dataset_sizes(cfg: TrainConfig, data_root: str) -> DataSizes:
    """The part sizes a run of `cfg` reads from `data_root` (metadata and audio headers only)."""
    from sed.data.desed import load_desed

    dataset = load_desed(
        data_root,
        skip_missing_audio=cfg.skip_missing_audio,
        val_fraction=cfg.val_fraction,
        split_seed=cfg.split_seed,
        layout=cfg.layout,
    )
    n = {name: len(split.filenames) for name, split in dataset.splits.items()}
    return DataSizes(
        n.get("weak", 0),
        n.get("unlabeled", 0),
        n.get("synthetic_train", 0),
        n.get("synthetic_val", 0),
        n.get("public_eval", 0),
        f"{data_root}",
        n.get("validation", 0),
    )


# ----------------------------------------------------------------------------- epochs under ASHA
def asha_rungs(grace: int, reduction_factor: float, max_epochs: int) -> list[int]:
    """Ray's ASHA milestones below max_epochs: grace * rf^k (ray.tune.schedulers.async_hyperband)."""
    count = int(math.log(max_epochs / grace) / math.log(reduction_factor) + 1)
    return sorted({int(grace * reduction_factor**k) for k in range(count)} - {max_epochs})


def asha_epochs(
    n: int, grace: int, reduction_factor: float, max_epochs: int, seed: int = 0, simulations: int = SIMULATIONS
) -> list[list[int]]:
    """Epochs each of `n` trials runs, per simulation: ranks drawn at random, trials reaching rungs in order."""
    rng = random.Random(seed)
    rungs = asha_rungs(grace, reduction_factor, max_epochs)
    quantile = 1 - 1 / reduction_factor
    out = []
    for _ in range(simulations):
        quality = [rng.random() for _ in range(n)]
        recorded: dict[int, list[float]] = {r: [] for r in rungs}
        epochs = []
        for q in quality:
            reached = max_epochs
            for rung in rungs:
                recorded[rung].append(q)
                if q < _percentile(recorded[rung], quantile):
                    reached = rung
                    break
            epochs.append(reached)
        out.append(epochs)
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    """numpy.percentile's default (linear) interpolation, as Ray's cutoff uses."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def makespan(durations: Sequence[float], slots: int) -> float:
    """Wall time of trials started in order on `slots` slots (each starts when a slot frees)."""
    free = [0.0] * max(1, slots)
    for duration in durations:
        i = min(range(len(free)), key=free.__getitem__)
        free[i] += duration
    return max(free)


# ----------------------------------------------------------------------------- the plan
@dataclass
class StagePlan:
    name: str
    trials: int
    epochs: str
    mean_epochs: float
    steps_per_epoch: int
    at_once: int
    wall_s: float
    gpu_hours: float
    step_s: float
    #: GPUs the stage holds (the GPUs its trials at once occupy) x its wall time
    held_gpu_hours: float = 0.0
    notes: list[str] = field(default_factory=list)


def objective_configs(space: Space) -> list[TrainConfig]:
    """One config per objective the stage's trials can have (grid: its points; groups: each group's
    values; sampled: the discrete choices)."""
    base = space.base_config()
    if space.is_grid or space.groups:
        return [apply_overrides(base, p.overrides) for p in space.grid] + [
            apply_overrides(base, g.values) for g in space.groups
        ]
    params = {k: p for k, p in space.params.items() if k in OBJECTIVE_KEYS or k == "batch_size"}
    combos = discrete_combinations(params, space.fixed) or [{}]
    return [apply_overrides(base, combo) for combo in combos]


StepCost = Callable[[TrainConfig], tuple[float, float]]  # config -> (seconds per step, validation seconds)


def table_cost(packing: Packing, sizes: DataSizes, cores: int) -> tuple[StepCost, str]:
    """Seconds per step and per validation from the measured tables, at this packing."""
    on_gpu = packing.gpu > 0
    # on the CPU, trials beside each other share the cores: 13 % slower each when they fit, more beyond
    crowd = packing.max_concurrent * packing.cpu / max(1, cores)
    cpu_factor = (step_rates.CPU_SIDE_BY_SIDE_SLOWDOWN if packing.max_concurrent > 1 else 1.0) * max(1.0, crowd)

    def cost(cfg: TrainConfig) -> tuple[float, float]:
        selection = sizes.validation if cfg.selection_split == "validation" else sizes.synthetic_val
        val = step_rates.validation_seconds(cfg, selection, on_gpu)
        if on_gpu:
            return step_rates.gpu_step_seconds(cfg, packing.trials_per_gpu or 1).seconds, val
        return step_rates.cpu_step_seconds(cfg).seconds * cpu_factor, val * cpu_factor

    where = (
        f"H200 rates at {packing.trials_per_gpu or 1} per GPU"
        if on_gpu
        else f"CPU rates x {cpu_factor:.2f} for {packing.max_concurrent} trials on {cores} cores"
    )
    return cost, where


def eval_seconds(sizes: DataSizes) -> float:
    """A final trial's public evaluation: PSDS at 50 thresholds, threshold-free metrics, output files
    (about twice the measured psds_eval cost, 3.2 s + 5 ms per clip: benchmarks/README.md, "Metric cost")."""
    return 2 * (3.0 + 0.005 * sizes.public_eval)


def plan_stages(space: Space, packing: Packing, sizes: DataSizes, cost: StepCost) -> list[StagePlan]:
    configs = objective_configs(space)
    per_config = [(cfg, *cost(cfg)) for cfg in configs]
    steps = sizes.steps_per_epoch(configs[0])
    step_s = sum(s for _, s, _ in per_config) / len(per_config)
    val_s = sum(v for _, _, v in per_config) / len(per_config)
    epoch_s = steps * step_s + val_s
    stages = []
    sched = space.scheduler
    n = space.num_samples
    at_once = packing.at_once(n)
    if space.is_grid:
        durations = [[TRIAL_STARTUP_S + sched.max_epochs * (steps * s + v) for _, s, v in per_config]]
        epochs_text, mean_epochs = f"{sched.max_epochs}", float(sched.max_epochs)
    elif sched.kind == "asha":
        runs = asha_epochs(n, sched.grace_period, sched.reduction_factor, sched.max_epochs)
        durations = [[TRIAL_STARTUP_S + e * epoch_s for e in run] for run in runs]
        mean_epochs = sum(map(sum, runs)) / (len(runs) * n)
        rungs = asha_rungs(sched.grace_period, sched.reduction_factor, sched.max_epochs)
        epochs_text = f"{min(rungs)}-{sched.max_epochs} (ASHA rungs {rungs}; mean {mean_epochs:.1f})"
    else:
        durations = [[TRIAL_STARTUP_S + sched.max_epochs * epoch_s] * n]
        epochs_text, mean_epochs = f"{sched.max_epochs}", float(sched.max_epochs)
    wall = sum(makespan(d, at_once) for d in durations) / len(durations) + STAGE_OVERHEAD_S
    busy = sum(sum(d) for d in durations) / len(durations)
    stages.append(
        StagePlan(
            "search",
            n,
            epochs_text,
            mean_epochs,
            steps,
            at_once,
            wall,
            busy * packing.gpu / 3600,
            step_s,
            held(packing, at_once) * wall / 3600,
        )
    )
    if space.final is not None:
        final = space.final
        top = final.top_k * final_groups(space)
        configs_n = top + (1 if final.control is not None else 0)
        trials = configs_n * len(final.seeds)
        duration = TRIAL_STARTUP_S + final.epochs * epoch_s + eval_seconds(sizes)
        if final.control is not None:
            control_cfg = apply_overrides(
                configs[0], {"augmentation": "none", "regularization": "none", "consistency_weight": 0.0}
            )
            c_step, c_val = cost(control_cfg)
            control = TRIAL_STARTUP_S + final.epochs * (steps * c_step + c_val) + eval_seconds(sizes)
            durations_f = [duration] * (top * len(final.seeds)) + [control] * len(final.seeds)
        else:
            durations_f = [duration] * trials
        at_once_f = packing.at_once(trials)
        wall_f = makespan(durations_f, at_once_f) + STAGE_OVERHEAD_S
        if final.postprocess:  # one run after the other on the driver, after the stage
            wall_f += trials * POSTPROCESS_S_PER_CLIP * (sizes.validation + sizes.public_eval)
        stages.append(
            StagePlan(
                "final",
                trials,
                f"{final.epochs}",
                float(final.epochs),
                steps,
                at_once_f,
                wall_f,
                sum(durations_f) * packing.gpu / 3600,
                step_s,
                held(packing, at_once_f) * wall_f / 3600,
            )
        )
    return stages


def held(packing: Packing, at_once: int) -> float:
    """GPUs occupied by `at_once` trials at the packing's share."""
    if not packing.gpu:
        return 0.0
    return min(packing.gpus, math.ceil(at_once * packing.gpu - 1e-9))


def final_groups(space: Space) -> int:
    """Groups the final stage takes its top-k from (`final.per_group`: one per value of those params)."""
    groups = 1
    for key in getattr(space.final, "per_group", ()) or ():
        param = space.params.get(key)
        values = param.possible_values() if param is not None else None
        groups *= len(values) if values else 1
    return groups


def hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def format_plan(
    space: Space,
    packing: Packing,
    sizes: DataSizes,
    stages: list[StagePlan],
    rates: str,
    extra_s: float,
    notes: Sequence[str] = (),
) -> str:
    """The plan as printed: the cluster and packing, a table per stage, the totals."""
    base = space.base_config()
    lines = [
        f"plan for {space.name} ({space.path})",
        f"  {packing.describe(space.num_samples)}",
        f"  data: {sizes.source}: weak {sizes.weak}, unlabeled {sizes.unlabeled}, synthetic train "
        f"{sizes.synthetic_train} / selection {sizes.synthetic_val}, public eval {sizes.public_eval}; "
        f"{stages[0].steps_per_epoch} steps per epoch at batch {base.batch_size}"
        + (f" (max_steps_per_epoch {base.max_steps_per_epoch})" if base.max_steps_per_epoch else ""),
        f"  step times: {rates}",
        "",
        "| stage | trials | epochs per trial | steps per epoch | s per step | at once | wall | GPU-hours used / held |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st in stages:
        lines.append(
            f"| {st.name} | {st.trials} | {st.epochs} | {st.steps_per_epoch} | {st.step_s:.3f} | "
            f"{st.at_once} | {hms(st.wall_s)} | {st.gpu_hours:.1f} / {st.held_gpu_hours:.1f} |"
        )
    total = sum(st.wall_s for st in stages) + extra_s
    gpu_hours = sum(st.gpu_hours for st in stages)
    held_hours = sum(st.held_gpu_hours for st in stages)
    lines.append("")
    lines.append(
        f"  estimated total: {hms(total)} wall ({total:.0f} s, driver and data {extra_s:.0f} s included), "
        f"{gpu_hours:.1f} GPU-hours used by trials (time x GPU share), {held_hours:.1f} held "
        "(GPUs occupied x wall)"
    )
    lines.extend(f"  note: {note}" for note in notes)
    return "\n".join(lines)
