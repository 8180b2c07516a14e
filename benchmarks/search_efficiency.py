"""Search efficiency (issue 13 item 4, issue 26 item 3): Optuna TPE + ASHA vs random search (FIFO) vs TPE without ASHA.

A tabular benchmark in two steps, so that many repetitions of each search
cost seconds instead of hours on a 2-core machine:

1. `table`: train every configuration of a discrete version of a space
   once (`--regime`, see `REGIMES`) and record each epoch's validation
   macro F1 and wall time: the learning curves the searches read. Two
   processes at a time, one thread each. Appends one JSON line per
   configuration to `--table` (restartable: finished configurations are
   skipped). Regimes:
   - `demo` (the default): spaces/demo.yaml's recipe of 2026-12-02 (the
     `default` embedded data, no unlabeled part, 9 x 25-step epochs; frozen
     in `DEMO_2026_12_02`); augmentation random / adversarial / VAT / mixup
     x locations cnn / rnn / latent x consistency weight 0.5 / 5.
   - `scarce`: benchmarks/regime.py's recipe on the `scarce` embedded data
     (spaces/demo.yaml as of 2026-12-05: its domain gap and the unlabeled
     half of every batch, L2, 24 x 25-step epochs, ASHA grace 8), where
     FilterAugment consistency is known to help;
     random / mixup at input or latent, filter, snr_noise x weight
     0.5 / 1.5 / 4.
   - `scarce-recorded`: the same, selecting on the recorded validation part
     (`selection_split=validation`) instead of the clean synthetic split.
   - `scarce-far`: spaces/demo.yaml's recipe of 2026-12-06: `scarce-recorded`
     on the `scarce-far` data (a stronger recording chain) with 64 mel
     bands, `filter_adversarial` added.
2. `simulate`: the real searcher and scheduler objects of
   `search.searchers` (`make_search_alg`, `make_scheduler`: Ray Tune's
   OptunaSearch with TPE or random sampling, Ray Tune's ASHAScheduler or
   FIFO with the regime's epochs and grace period) over the same discrete
   space, called in the order Tune's controller calls them by a
   discrete-event loop with 2 slots (as in the demo) that replays each
   configuration's recorded curve and epoch times (`run_search`). Running
   them through Tune itself costs ~20 s per replayed trial on this
   machine, hours for the repetitions; the loop takes milliseconds. For
   each method and searcher seed: the epochs (and recorded training
   seconds) spent until the best-so-far validation score first reaches
   the best score full random search finds with the same number of
   samples, and the best-so-far curve per epoch spent.

Run:
    python benchmarks/search_efficiency.py table --table benchmarks/results/search_efficiency_table.jsonl
    python benchmarks/search_efficiency.py simulate --table benchmarks/results/search_efficiency_table.jsonl \
        --samples 12 --reps 10
    python benchmarks/search_efficiency.py table --regime scarce --table benchmarks/results/search_efficiency_scarce.jsonl
    python benchmarks/search_efficiency.py simulate --regime scarce \
        --table benchmarks/results/search_efficiency_scarce.jsonl --samples 8 --reps 10
    python benchmarks/search_efficiency.py simulate --regime scarce-recorded --grace 8 --eta 2 --startup 2 \
        --table benchmarks/results/search_efficiency_scarce_recorded.jsonl --samples 12 --reps 10

What this does not measure: the noise between training runs of one
configuration (the table holds one seed per configuration, so every search
reads the same curves), and continuous strengths (TPE sees categorical
choices here). Results: benchmarks/README.md, "Search efficiency".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRIC = "val_macro_f1"


@dataclass(frozen=True)
class Regime:
    """One tabular benchmark: the recipe every configuration shares and the discrete space searched."""

    #: TrainConfig values of every configuration (a search space's `fixed` block)
    constants: dict[str, Any]
    #: the choices of the discrete space, in the order the space lists them
    augmentations: tuple[str, ...]
    #: locations per augmentation (an augmentation with one location has it fixed)
    locations: dict[str, tuple[str, ...]]
    weights: tuple[float, ...]
    #: the one strength per augmentation (the table fixes what a search would sample)
    strength: dict[str, dict[str, Any]]
    epochs: int
    grace: int
    #: ASHA's reduction factor (a trial goes on past a rung when in the top 1/eta there)
    eta: int = 3

    def grid(self) -> list[dict[str, Any]]:
        """The discrete space: every (augmentation, location, consistency_weight)."""
        return [
            {"augmentation": aug, "locations": loc, "consistency_weight": w, **self.strength[aug]}
            for aug in self.augmentations
            for loc in self.locations[aug]
            for w in self.weights
        ]


#: `demo`: spaces/demo.yaml's recipe as of 2026-12-02 (the `default` embedded data, no unlabeled part,
#: 9 x 25-step epochs; frozen here, as the table in results/search_efficiency_table.jsonl was trained on it).
DEMO_2026_12_02 = Regime(
    constants=dict(
        embedded_size="default",
        cnn_filters=[8, 16, 16, 16],
        rnn_hidden=16,
        pooling="max",
        weight_init="torch",
        dropout=0.0,
        regularization="l2",
        batch_size=8,
        weak_fraction=0.5,
        strong_fraction=0.5,
        max_steps_per_epoch=25,
        lr=0.01,
        rampup_epochs=0,
        median_window=11,
    ),
    augmentations=("random", "adversarial", "vat", "mixup"),
    locations={a: ("cnn", "rnn", "latent") for a in ("random", "adversarial", "vat", "mixup")},
    weights=(0.5, 5.0),
    strength={
        "random": {"noise_scale": 0.1},
        "adversarial": {"epsilon": 0.1},
        "vat": {"epsilon": 0.1},
        "mixup": {"mixup_alpha": 0.5},
    },
    epochs=9,
    grace=3,
)


def _scarce() -> Regime:
    """`scarce`: the recipe of benchmarks/regime.py, where filter's win was measured, on `scarce` with
    L2 and 20 selection clips -- spaces/demo.yaml's `fixed` block and scheduler as of 2026-12-05
    (read from regime.py, not from the demo, so that a later demo leaves the recorded table valid)."""
    from regime import RECIPE

    constants = {k: v for k, v in RECIPE.items() if k not in ("epochs", "device", "num_threads", "track_energy")}
    constants.update(embedded_size="scarce", val_fraction=0.5, regularization="l2", l2=1e-5)
    return Regime(
        constants=constants,
        augmentations=("random", "mixup", "filter", "snr_noise"),
        locations={
            "random": ("input", "latent"),
            "mixup": ("input", "latent"),
            "filter": ("input",),
            "snr_noise": ("input",),
        },
        weights=(0.5, 1.5, 4.0),
        strength={
            "random": {"noise_scale": 0.1},
            "mixup": {"mixup_alpha": 0.5},
            "filter": {"filter_db": 10.0},
            "snr_noise": {"noise_snr": 30.0},
        },
        epochs=24,
        grace=8,
    )


def _scarce_recorded() -> Regime:
    """`scarce` selecting on the recorded validation part (`selection_split=validation`)."""
    regime = _scarce()
    return dataclasses.replace(regime, constants={**regime.constants, "selection_split": "validation"})


def _scarce_far() -> Regime:
    """spaces/demo.yaml's recipe of 2026-12-06: `scarce-far` (the stronger recording chain), 64 mel bands,
    selecting on the recorded validation part; the FilterAugment family with its worst-case variant
    (`filter_adversarial`, the demo's winner) beside random / mixup at input or latent and snr_noise,
    x weight 0.5 / 1.5 / 4."""
    regime = _scarce_recorded()
    return dataclasses.replace(
        regime,
        constants={**regime.constants, "embedded_size": "scarce-far", "n_mels": 64},
        augmentations=("random", "mixup", "filter", "filter_adversarial", "snr_noise"),
        locations={**regime.locations, "filter_adversarial": ("input",)},
        strength={**regime.strength, "filter_adversarial": {"filter_db": 10.0}},
    )


REGIMES: dict[str, Any] = {
    "demo": lambda: DEMO_2026_12_02,
    "scarce": _scarce,
    "scarce-recorded": _scarce_recorded,
    "scarce-far": _scarce_far,
}


def key_of(config: dict[str, Any]) -> str:
    return f"{config['augmentation']}|{config['locations']}|{float(config['consistency_weight']):g}"


# ----------------------------------------------------------------------------- 1. table
def train_curve(args: tuple[dict[str, Any], int, str | None, str]) -> dict[str, Any]:
    """One configuration's learning curve (runs in a worker process, one thread)."""
    overrides, seed, cache, regime_name = args
    regime = REGIMES[regime_name]()
    import torch

    torch.set_num_threads(1)
    from sed.config import TrainConfig, apply_overrides
    from sed.training.trainer import Trainer, prepare_data

    constants = {**regime.constants, "epochs": regime.epochs, "num_threads": 1, "track_energy": False}
    cfg = apply_overrides(TrainConfig(), {**constants, **overrides, "seed": seed})
    data = prepare_data(cfg, cache_dir=cache, progress=False)
    trainer = Trainer(cfg, data=data, progress=False)
    curve = []
    started = time.perf_counter()
    for _ in range(cfg.epochs):
        m = trainer.train_epoch()
        curve.append({"epoch": m["epoch"], METRIC: m[METRIC], "epoch_seconds": m["epoch_seconds"]})
    return {
        "key": key_of(overrides),
        "config": overrides,
        "seed": seed,
        "curve": curve,
        "wall_s": time.perf_counter() - started,
        "load_avg": os.getloadavg()[0],
    }


def build_table(path: Path, workers: int, seed: int, cache: str | None, regime_name: str) -> None:
    import multiprocessing as mp

    path.parent.mkdir(parents=True, exist_ok=True)
    done = (
        {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()} if path.exists() else set()
    )
    regime = REGIMES[regime_name]()
    todo = [c for c in regime.grid() if key_of(c) not in done]
    print(f"{len(done)} configurations in {path}, {len(todo)} to train ({workers} at a time)", flush=True)
    if not todo:
        return
    # build data + features once, in this process, before the workers read them
    from sed.config import TrainConfig, apply_overrides
    from sed.training.trainer import prepare_data

    prepare_data(apply_overrides(TrainConfig(), regime.constants), cache_dir=cache, progress=True)
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        for n, row in enumerate(
            pool.imap_unordered(train_curve, [(c, seed, cache, regime_name) for c in todo]), start=1
        ):
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            best = max(e[METRIC] for e in row["curve"])
            print(
                f"[{n}/{len(todo)}] {row['key']}: best {METRIC} {best:.4f}, {row['wall_s']:.0f} s "
                f"(load {row['load_avg']:.1f}; {time.perf_counter() - started:.0f} s so far)",
                flush=True,
            )


def read_table(path: Path, regime: Regime) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table = {row["key"]: row for row in rows}
    missing = [key_of(c) for c in regime.grid() if key_of(c) not in table]
    if missing:
        raise SystemExit(f"{path}: {len(missing)} configurations missing (e.g. {missing[0]}); run the `table` step")
    return table


# ----------------------------------------------------------------------------- 2. simulate
SPACE_TEMPLATE = """
name: efficiency
metric: val_macro_f1
mode: max
num_samples: {samples}
searcher: {{kind: {searcher}, seed: {seed}, n_startup_trials: {startup}}}  # random sampling ignores it
scheduler: {scheduler}
max_concurrent: 2
fixed: {{rampup_epochs: {rampup}}}  # the recipe's; the space checks ASHA's first rung against it
params:
  augmentation: {{choice: {augmentations}}}
{locations}  consistency_weight: {{choice: {weights}}}
"""

METHODS = {
    "tpe+asha": ("optuna-tpe", "{{kind: asha, max_epochs: {epochs}, grace_period: {grace}, reduction_factor: {eta}}}"),
    "random (fifo)": ("optuna-random", "{{kind: fifo, max_epochs: {epochs}}}"),
    "tpe (fifo)": ("optuna-tpe", "{{kind: fifo, max_epochs: {epochs}}}"),
}


def _locations_lines(regime: Regime) -> str:
    """`locations` as a space samples it: a choice per group of augmentations with the same ones."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for aug in regime.augmentations:
        groups.setdefault(regime.locations[aug], []).append(aug)
    if len(groups) == 1:
        (locations,) = groups
        return f"  locations: {{choice: {list(locations)}}}\n"
    several = [(locs, augs) for locs, augs in groups.items() if len(locs) > 1]
    if len(several) > 1:
        raise ValueError("one `locations` parameter per space: give the augmentations with several the same ones")
    single = {aug: locs[0] for locs, augs in groups.items() if len(locs) == 1 for aug in augs}
    if len(set(single.values())) > 1:
        raise ValueError("augmentations with one location must share it (it is the `fixed` value)")
    lines = ""
    if several:
        locs, augs = several[0]
        lines += f"  locations: {{choice: {list(locs)}, when: {{augmentation: {augs}}}}}\n"
    return lines


def make_space(method: str, samples: int, seed: int, startup: int, regime: Regime):
    from search.space import parse_space

    searcher, scheduler = METHODS[method]
    text = SPACE_TEMPLATE.format(
        samples=samples,
        searcher=searcher,
        seed=seed,
        scheduler=scheduler.format(epochs=regime.epochs, grace=regime.grace, eta=regime.eta),
        startup=startup,
        augmentations=list(regime.augmentations),
        locations=_locations_lines(regime),
        weights=list(regime.weights),
        rampup=regime.constants["rampup_epochs"],
    )
    return parse_space(text, "efficiency.yaml")


class _Trial:
    """What the scheduler reads of a Tune trial: its id."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def run_search(
    table: dict[str, dict[str, Any]],
    method: str,
    samples: int,
    seed: int,
    startup: int,
    regime: Regime,
    slots: int = 2,
) -> list[dict[str, Any]]:
    """Every epoch one search runs, in the order results arrive (a discrete-event loop over the table).

    The searcher and the scheduler are the objects `search.searchers` builds
    for a space (OptunaSearch with its seeded sampler; ASHAScheduler or
    FIFO), called as Tune's controller calls them: `suggest` when a slot is
    free, `on_trial_result` for every epoch (the scheduler may answer
    STOP), `on_trial_complete` when a trial ends or is stopped. `slots`
    trials run at once; an epoch takes the wall time recorded for it, so a
    slow configuration holds its slot longer, as on the machine.
    """
    import heapq

    from ray.tune.schedulers import TrialScheduler

    from search.searchers import make_scheduler, make_search_alg

    space = make_space(method, samples, seed, startup, regime)
    searcher, scheduler = make_search_alg(space), make_scheduler(space)
    scheduler.set_search_properties(space.tune_metric, space.mode)
    events: list[dict[str, Any]] = []
    running: list[tuple[float, int, str]] = []  # (time its next epoch ends, tie-break, trial id)
    state: dict[str, dict[str, Any]] = {}
    started = 0
    clock = 0.0

    def start(now: float) -> None:
        nonlocal started
        trial_id = f"t{started:03d}"
        config = dict(searcher.suggest(trial_id))
        if "locations" not in config:  # an augmentation defined at one location only
            config["locations"] = regime.locations[config["augmentation"]][0]
        started += 1
        row = table[key_of(config)]
        state[trial_id] = {"row": row, "epoch": 0, "best": -math.inf, "key": key_of(config)}
        scheduler.on_trial_add(None, _Trial(trial_id))
        heapq.heappush(running, (now + row["curve"][0]["epoch_seconds"], started, trial_id))

    while started < min(slots, samples):
        start(clock)
    while running:
        clock, _, trial_id = heapq.heappop(running)
        info = state[trial_id]
        epoch = info["row"]["curve"][info["epoch"]]
        info["epoch"] += 1
        info["best"] = max(info["best"], epoch[METRIC])
        result = {
            "training_iteration": info["epoch"],
            "epoch": info["epoch"],
            METRIC: epoch[METRIC],
            f"best_{METRIC}": info["best"],
        }
        events.append(
            {
                "trial": trial_id,
                "key": info["key"],
                "epoch": info["epoch"],
                METRIC: epoch[METRIC],
                "epoch_seconds": epoch["epoch_seconds"],
                "clock": clock,
            }
        )
        searcher.on_trial_result(trial_id, result)
        decision = scheduler.on_trial_result(None, _Trial(trial_id), result)
        finished = info["epoch"] >= len(info["row"]["curve"])
        if finished or decision == TrialScheduler.STOP:
            searcher.on_trial_complete(trial_id, result)
            scheduler.on_trial_complete(None, _Trial(trial_id), result)
            if started < samples:
                start(clock)
        else:
            nxt = info["row"]["curve"][info["epoch"]]["epoch_seconds"]
            heapq.heappush(running, (clock + nxt, started + len(events), trial_id))
    return events


def spend_to_reach(events: list[dict[str, Any]], target: float) -> tuple[int | None, float | None, list[float]]:
    """(epochs, recorded seconds) spent until best-so-far >= target (None if never), best-so-far curve."""
    best, seconds, curve = -math.inf, 0.0, []
    reached: tuple[int | None, float | None] = (None, None)
    for n, event in enumerate(events, start=1):
        seconds += event["epoch_seconds"]
        best = max(best, event[METRIC])
        curve.append(best)
        if reached[0] is None and best >= target - 1e-12:
            reached = (n, seconds)
    return reached[0], reached[1], curve


def simulate(
    table_path: Path,
    samples: int,
    reps: int,
    startup: int,
    out: Path | None,
    regime_name: str,
    grace: int | None = None,
    eta: int | None = None,
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    regime = REGIMES[regime_name]()
    if grace is not None:
        regime = dataclasses.replace(regime, grace=grace)
    if eta is not None:
        regime = dataclasses.replace(regime, eta=eta)
    table = read_table(table_path, regime)
    best_possible = max(max(e[METRIC] for e in row["curve"]) for row in table.values())
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for rep in range(reps):
        seed = 100 + rep
        runs = {m: run_search(table, m, samples, seed, startup, regime) for m in METHODS}
        target = max(e[METRIC] for e in runs["random (fifo)"])
        for method, events in runs.items():
            epochs, seconds, curve = spend_to_reach(events, target)
            results[method].append(
                {
                    "seed": seed,
                    "target": target,
                    "epochs_total": len(events),
                    "seconds_total": sum(e["epoch_seconds"] for e in events),
                    "wall_total": max(e["clock"] for e in events),
                    "epochs_to_target": epochs,
                    "seconds_to_target": seconds,
                    "best": max(e[METRIC] for e in events),
                    "curve": curve,
                    "configs": sorted({e["key"] for e in events}),
                }
            )
        print(
            f"rep {rep} (searcher seed {seed}): random's best {target:.4f}; "
            + "; ".join(
                f"{m}: {r[-1]['epochs_to_target']} of {r[-1]['epochs_total']} epochs" for m, r in results.items()
            ),
            flush=True,
        )
    report(results, samples, reps, best_possible, len(table), regime.epochs)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "regime": regime_name,
                    "grace": regime.grace,
                    "eta": regime.eta,
                    "startup": startup,
                    "samples": samples,
                    "reps": reps,
                    "best_in_table": best_possible,
                    "results": results,
                },
                indent=1,
            )
        )
        print(f"wrote {out}")


def report(
    results: dict[str, list[dict[str, Any]]], samples: int, reps: int, best_possible: float, n: int, epochs: int
) -> None:
    random_epochs = [r["epochs_total"] for r in results["random (fifo)"]]
    print()
    print(
        f"{samples} samples per search over {n} configurations x {epochs} epochs, {reps} searcher seeds; "
        f"best validation F1 in the table {best_possible:.4f}"
    )
    print(
        "| method | reached random's best | epochs to reach it (mean) | % of random's epochs | "
        "reps at <= 35 % | recorded training s to reach it | epochs run in all | best found (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method, runs in results.items():
        reached = [r for r in runs if r["epochs_to_target"] is not None]
        ratio = [r["epochs_to_target"] / e for r, e in zip(runs, random_epochs) if r["epochs_to_target"] is not None]
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        print(
            f"| {method} | {len(reached)}/{len(runs)} | {mean([r['epochs_to_target'] for r in reached]):.1f} | "
            f"{100 * mean(ratio):.0f} % | {sum(x <= 0.35 for x in ratio)}/{len(runs)} | "
            f"{mean([r['seconds_to_target'] for r in reached]):.0f} | "
            f"{mean([r['epochs_total'] for r in runs]):.1f} | {mean([r['best'] for r in runs]):.4f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    t = sub.add_parser("table", help="train every configuration once and record its curve")
    t.add_argument("--table", type=Path, required=True)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--cache", default=None)
    t.add_argument("--regime", choices=sorted(REGIMES), default="demo", help="the recipe and discrete space")
    s = sub.add_parser("simulate", help="run the searchers over the recorded curves")
    s.add_argument("--table", type=Path, required=True)
    s.add_argument("--samples", type=int, default=12)
    s.add_argument("--reps", type=int, default=5)
    s.add_argument("--startup", type=int, default=4, help="TPE's n_startup_trials (random ones first)")
    s.add_argument("--out", type=Path, default=None)
    s.add_argument("--regime", choices=sorted(REGIMES), default="demo", help="the recipe and discrete space")
    s.add_argument("--grace", type=int, default=None, help="ASHA's first rung (default: the regime's)")
    s.add_argument("--eta", type=int, default=None, help="ASHA's reduction factor (default: the regime's, 3)")
    args = parser.parse_args(argv)
    if args.step == "table":
        build_table(args.table, args.workers, args.seed, args.cache, args.regime)
    else:
        simulate(args.table, args.samples, args.reps, args.startup, args.out, args.regime, args.grace, args.eta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
