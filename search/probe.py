"""`--plan --probe`: step and validation times taken on the cluster itself, as the run will pack its trials.

For each objective of the space (augmentation x input/latent x
regulariser, `search.step_rates.objective_key`), a Ray task with one
trial's resources trains the space's model on the run's data for two
epochs of `PROBE_STEPS` steps (`sed.training.trainer.Trainer`, as a trial
does) and returns the second epoch's seconds per step and validation
seconds (the first pays the start-up). As many tasks run at once as the
trials that will share a GPU (or the CPU slots), so the figures include
that contention. The data is prepared once on the driver (as a run does);
a task on a node that cannot read it prepares it there.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from sed.config import TrainConfig, apply_overrides

from .packing import Packing
from .plan import StepCost, objective_configs
from .space import Space
from .step_rates import objective_key

PROBE_STEPS = 5


def _probe_one(
    overrides: dict[str, Any], prepared: str | None, data_root: str | None, cache_dir: str | None, threads: int
) -> tuple[float, float]:
    from sed.data.prepare import load_prepared
    from sed.training.trainer import Trainer

    cfg = apply_overrides(TrainConfig(), {**overrides, "num_threads": threads})
    data = None
    if prepared and Path(prepared).is_file():
        try:
            data = load_prepared(prepared)
        except (OSError, ValueError):
            data = None
    trainer = Trainer(cfg, data_root=data_root, cache_dir=cache_dir, data=data, progress=False)
    try:
        trainer.train_epoch()
        second = trainer.train_epoch()
    finally:
        trainer.close()
    return second["train_seconds"] / max(1, second["steps"]), second["val_seconds"]


def probe_cost(space: Space, packing: Packing, args: Any, local: bool) -> tuple[StepCost, str]:
    """Seconds per step and per validation of each objective, measured on the cluster now."""
    import ray

    from sed.data.prepare import prepare_data, save_prepared

    from .tuner import start_ray

    if local:
        start_ray(None, debug=False)
    data_root = str(args.data) if args.data else None
    cache_dir = str(args.cache_dir) if args.cache_dir else None
    base = space.base_config()
    by_key: dict[tuple[str, str, str], TrainConfig] = {}
    for cfg in objective_configs(space):
        by_key.setdefault(objective_key(cfg), cfg)
    with tempfile.TemporaryDirectory(prefix="sedtune-probe-") as tmp:
        prepared = save_prepared(prepare_data(base, data_root, cache_dir, progress=False), Path(tmp) / "data.json")
        remote = ray.remote(num_cpus=packing.cpu, num_gpus=packing.gpu)(_probe_one)
        at_once = packing.trials_per_gpu if packing.gpu and packing.trials_per_gpu else packing.max_concurrent
        jobs = []
        for key, cfg in by_key.items():
            overrides = {**cfg.to_dict(), "epochs": 2, "max_steps_per_epoch": PROBE_STEPS}
            jobs.append((key, overrides))
        # each round runs `at_once` tasks side by side (objectives cycled), as trials share the cluster
        measured: dict[tuple[str, str, str], list[tuple[float, float]]] = {k: [] for k in by_key}
        rounds = max(1, -(-len(jobs) // at_once))
        for r in range(rounds):
            batch = [jobs[(r * at_once + i) % len(jobs)] for i in range(at_once)]
            refs = [remote.remote(o, str(prepared), data_root, cache_dir, max(1, int(packing.cpu))) for _, o in batch]
            for (key, _), result in zip(batch, ray.get(refs)):
                measured[key].append(result)
    if local:
        ray.shutdown()
    medians = {k: (statistics.median(s for s, _ in v), statistics.median(t for _, t in v)) for k, v in measured.items()}

    def cost(cfg: TrainConfig) -> tuple[float, float]:
        key = objective_key(cfg)
        if key in medians:
            return medians[key]
        return statistics.mean(s for s, _ in medians.values()), statistics.mean(t for _, t in medians.values())

    text = ", ".join(f"{'/'.join(k)} {s:.3f} s" for k, (s, _) in medians.items())
    return cost, f"probed on this cluster ({at_once} at once, {PROBE_STEPS}-step epochs): {text}"
