"""Search efficiency (issue 13 item 4, issue 26 item 3): Optuna TPE + ASHA vs random search (FIFO) vs TPE without ASHA.

A tabular benchmark in two steps, so that many repetitions of each search
cost seconds instead of hours on a 2-core machine:

1. `table`: train every configuration of a discrete version of a space
   once (`--regime`, see `REGIMES`) and record each epoch's validation
   macro F1 and wall time: the learning curves the searches read. Two
   processes at a time, one thread each. Appends one JSON line per
   configuration to `--table` (restartable: finished configurations are
   skipped). With `--signals` each epoch also records the `SIGNALS`
   (threshold-free scores ASHA could read instead of the F1). Regimes:
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
   samples, and the best-so-far curve per epoch spent. `--rung-metric`
   makes ASHA compare the trials on another recorded score
   (`scheduler.rung_metric`); `--first-seed` picks the searcher seeds.
   TPE skips the configurations its search already ran, as a space's TPE
   does by default (`searcher.skip_repeats`, since 2026-12-07; random
   search, the reference, samples independently); `--run-repeats` trains
   them again, as every result recorded before that date did.
3. `ranks`: Spearman rho of every recorded score at epoch k with the final
   best F1 (how well a rung at k could rank the configurations).

Run:
    python benchmarks/search_efficiency.py table --table benchmarks/results/search_efficiency_table.jsonl
    python benchmarks/search_efficiency.py simulate --table benchmarks/results/search_efficiency_table.jsonl \
        --samples 12 --reps 10
    python benchmarks/search_efficiency.py table --regime scarce --table benchmarks/results/search_efficiency_scarce.jsonl
    python benchmarks/search_efficiency.py simulate --regime scarce \
        --table benchmarks/results/search_efficiency_scarce.jsonl --samples 8 --reps 10
    python benchmarks/search_efficiency.py simulate --regime scarce-recorded --grace 8 --eta 2 --startup 2 \
        --table benchmarks/results/search_efficiency_scarce_recorded.jsonl --samples 12 --reps 10
    python benchmarks/search_efficiency.py table --regime scarce-far --signals \
        --table benchmarks/results/search_efficiency_scarce_far.jsonl
    python benchmarks/search_efficiency.py ranks --table benchmarks/results/search_efficiency_scarce_far.jsonl
    python benchmarks/search_efficiency.py simulate --regime scarce-far --grace 4 --rung-metric val_frame_ap \
        --table benchmarks/results/search_efficiency_scarce_far.jsonl --samples 24 --reps 50 --first-seed 300

What this does not measure: the noise between training runs of one
configuration (the table holds one seed per configuration, so every search
reads the same curves), and continuous strengths (TPE sees categorical
choices here). Results: benchmarks/README.md, "Search efficiency".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
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
#: Per-epoch scores besides the selection F1 that `table --signals` records, each a candidate for what
#: ASHA reads at its rungs: all on the selection split, computed from one extra prediction pass after
#: the epoch (outside its recorded `epoch_seconds`):
#: `val_psds1` (threshold-free PSDS1, sed_scores_eval), `val_frame_ap` (macro average precision of
#: the frame probabilities against the frame targets, scikit-learn), `val_clip_ap` (the same of each
#: clip's highest frame probability against its weak labels), `val_frame_bce` (mean frame
#: binary cross-entropy, lower is better).
SIGNALS = ("val_psds1", "val_frame_ap", "val_clip_ap", "val_frame_bce")
#: The recorded scores where lower is better (every other one: higher).
LOWER_IS_BETTER = ("val_frame_bce",)


def epoch_signals(trainer: Any) -> dict[str, float]:
    """The `SIGNALS` of the trainer's current model on its selection split."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    from sed.eval.frame_scores import frame_average_precision

    split_name = trainer.config.selection_split
    split = trainer.data.split(split_name)
    probs = trainer.evaluator.predict(trainer.selected_model(), split_name)
    frames = split.strong_targets(trainer.data.labels, trainer.config.offset_rounding)
    clips = split.weak_targets(trainer.data.labels)
    peak = probs.max(axis=1)
    # the classes with an active frame and a clip without the class (AP needs both)
    scored = [c for c in range(frames.shape[-1]) if frames[..., c].any() and clips[:, c].sum() < len(clips)]
    clip_ap = [average_precision_score(clips[:, c], peak[:, c]) for c in scored]
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    bce = -(frames * np.log(p) + (1 - frames) * np.log(1 - p)).mean()
    psds1 = trainer.evaluator.score(split_name, probs, False, 10, threshold_free=("psds1",))["psds1"]
    return {
        "val_psds1": float(psds1),
        "val_frame_ap": frame_average_precision(probs, frames),
        "val_clip_ap": float(np.mean(clip_ap)),
        "val_frame_bce": float(bce),
    }


def train_curve(args: tuple[dict[str, Any], int, str | None, str, bool]) -> dict[str, Any]:
    """One configuration's learning curve (runs in a worker process, one thread)."""
    overrides, seed, cache, regime_name, signals = args
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
        curve.append(
            {
                "epoch": m["epoch"],
                METRIC: m[METRIC],
                "epoch_seconds": m["epoch_seconds"],
                **(epoch_signals(trainer) if signals else {}),
            }
        )
    return {
        "key": key_of(overrides),
        "config": overrides,
        "seed": seed,
        "curve": curve,
        "wall_s": time.perf_counter() - started,
        "load_avg": os.getloadavg()[0],
    }


def build_table(
    path: Path, workers: int, seed: int, cache: str | None, regime_name: str, signals: bool = False
) -> None:
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
            pool.imap_unordered(train_curve, [(c, seed, cache, regime_name, signals) for c in todo]), start=1
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
searcher: {{kind: {searcher}, seed: {seed}, n_startup_trials: {startup}, skip_repeats: {skip}}}  # random ignores the startup
scheduler: {scheduler}
max_concurrent: 2
# the recipe's ramp-up (the space checks ASHA's first rung against it); the flags of the recorded scores
# ASHA may read (`--rung-metric`)
fixed: {{rampup_epochs: {rampup}, compute_val_frame_ap: true, compute_val_psds1: true}}
params:
  augmentation: {{choice: {augmentations}}}
{locations}  consistency_weight: {{choice: {weights}}}
"""

METHODS = {
    "tpe+asha": (
        "optuna-tpe",
        "{{kind: asha, max_epochs: {epochs}, grace_period: {grace}, reduction_factor: {eta}, rung_metric: {rung}}}",
    ),
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


def make_space(
    method: str,
    samples: int,
    seed: int,
    startup: int,
    regime: Regime,
    rung_metric: str = METRIC,
    skip_repeats: bool = True,
):
    """The space a method searches; `skip_repeats` applies to TPE (random search is the reference: it samples
    each trial independently, repeats included, as random search does)."""
    from search.space import parse_space

    searcher, scheduler = METHODS[method]
    text = SPACE_TEMPLATE.format(
        samples=samples,
        searcher=searcher,
        seed=seed,
        scheduler=scheduler.format(epochs=regime.epochs, grace=regime.grace, eta=regime.eta, rung=rung_metric),
        startup=startup,
        skip=str(skip_repeats and searcher == "optuna-tpe").lower(),
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
    rung_metric: str = METRIC,
    skip_repeats: bool = True,
) -> list[dict[str, Any]]:
    """Every epoch one search runs, in the order results arrive (a discrete-event loop over the table).

    The searcher and the scheduler are the objects `search.searchers` builds
    for a space (OptunaSearch with its seeded sampler; ASHAScheduler or
    FIFO), called as Tune's controller calls them: `suggest` when a slot is
    free, `on_trial_result` for every epoch (the scheduler may answer
    STOP), `on_trial_complete` when a trial ends or is stopped. `slots`
    trials run at once; an epoch takes the wall time recorded for it, so a
    slow configuration holds its slot longer, as on the machine. Each
    result carries every score the table recorded and its best so far
    (`best_<score>`, as search.trainable reports them), so ASHA can compare
    trials on `rung_metric` (`scheduler.rung_metric`) while the searcher reads
    the F1.
    """
    import heapq

    from ray.tune.schedulers import TrialScheduler

    from search.searchers import make_scheduler, make_search_alg

    space = make_space(method, samples, seed, startup, regime, rung_metric, skip_repeats)
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
        with contextlib.redirect_stdout(io.StringIO()):  # the searcher's line per skipped repeat
            config = dict(searcher.suggest(trial_id))
        if "locations" not in config:  # an augmentation defined at one location only
            config["locations"] = regime.locations[config["augmentation"]][0]
        started += 1
        row = table[key_of(config)]
        state[trial_id] = {"row": row, "epoch": 0, "best": {}, "key": key_of(config)}
        scheduler.on_trial_add(None, _Trial(trial_id))
        heapq.heappush(running, (now + row["curve"][0]["epoch_seconds"], started, trial_id))

    while started < min(slots, samples):
        start(clock)
    while running:
        clock, _, trial_id = heapq.heappop(running)
        info = state[trial_id]
        epoch = info["row"]["curve"][info["epoch"]]
        info["epoch"] += 1
        result = {"training_iteration": info["epoch"], "epoch": info["epoch"]}
        for score in (k for k in epoch if k.startswith("val_") and k not in LOWER_IS_BETTER):
            info["best"][score] = max(info["best"].get(score, -math.inf), epoch[score])
            result.update({score: epoch[score], f"best_{score}": info["best"][score]})
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
    first_seed: int = 100,
    rung_metric: str = METRIC,
    skip_repeats: bool = True,
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    regime = REGIMES[regime_name]()
    if grace is not None:
        regime = dataclasses.replace(regime, grace=grace)
    if eta is not None:
        regime = dataclasses.replace(regime, eta=eta)
    table = read_table(table_path, regime)
    if any(rung_metric not in row["curve"][0] for row in table.values()):
        raise SystemExit(f"{table_path}: no per-epoch {rung_metric}; build the table with `table --signals`")
    best_possible = max(max(e[METRIC] for e in row["curve"]) for row in table.values())
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for rep in range(reps):
        seed = first_seed + rep
        runs = {
            m: run_search(table, m, samples, seed, startup, regime, rung_metric=rung_metric, skip_repeats=skip_repeats)
            for m in METHODS
        }
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
                    "rung_metric": rung_metric,
                    "skip_repeats": skip_repeats,
                    "first_seed": first_seed,
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


def ranks(table_path: Path, epochs: tuple[int, ...] = (2, 4, 6, 8, 12, 16, 20)) -> None:
    """How well each recorded score at epoch k ranks the configurations' final best F1 (Spearman rho),
    as the last value and as the best so far (what ASHA reads)."""
    from scipy.stats import spearmanr

    rows = [json.loads(line) for line in table_path.read_text().splitlines() if line.strip()]
    final = [max(e[METRIC] for e in row["curve"]) for row in rows]
    scores = [k for k in rows[0]["curve"][0] if k.startswith("val_")]
    print(f"{len(rows)} configurations; Spearman rho with the final best {METRIC}, last value / best so far")
    print("| score | " + " | ".join(f"epoch {k}" for k in epochs) + " |")
    print("|---|" + "---|" * len(epochs))

    def rho(values: list[float]) -> float:
        return float(spearmanr(values, final)[0])

    for score in scores:
        sign = -1.0 if score in LOWER_IS_BETTER else 1.0
        cells = [
            f"{rho([sign * row['curve'][k - 1][score] for row in rows]):+.2f} / "
            f"{rho([max(sign * e[score] for e in row['curve'][:k]) for row in rows]):+.2f}"
            for k in epochs
        ]
        print(f"| {score} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    t = sub.add_parser("table", help="train every configuration once and record its curve")
    t.add_argument("--table", type=Path, required=True)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--cache", default=None)
    t.add_argument("--regime", choices=sorted(REGIMES), default="demo", help="the recipe and discrete space")
    t.add_argument("--signals", action="store_true", help=f"also record {', '.join(SIGNALS)} per epoch")
    s = sub.add_parser("simulate", help="run the searchers over the recorded curves")
    s.add_argument("--table", type=Path, required=True)
    s.add_argument("--samples", type=int, default=12)
    s.add_argument("--reps", type=int, default=5)
    s.add_argument("--startup", type=int, default=4, help="TPE's n_startup_trials (random ones first)")
    s.add_argument("--out", type=Path, default=None)
    s.add_argument("--regime", choices=sorted(REGIMES), default="demo", help="the recipe and discrete space")
    s.add_argument("--grace", type=int, default=None, help="ASHA's first rung (default: the regime's)")
    s.add_argument("--eta", type=int, default=None, help="ASHA's reduction factor (default: the regime's, 3)")
    s.add_argument(
        "--rung-metric",
        default=METRIC,
        choices=(METRIC, "val_frame_ap", "val_psds1"),
        help="the score ASHA compares at its rungs (scheduler.rung_metric; the table must hold it: table --signals)",
    )
    s.add_argument("--first-seed", type=int, default=100, help="the first searcher seed (reps use the next ones)")
    s.add_argument(
        "--run-repeats",
        action="store_true",
        help="TPE trains a configuration it already ran again (searcher.skip_repeats: false; before 2026-12-07)",
    )
    r = sub.add_parser("ranks", help="how well each recorded score at epoch k ranks the final best F1")
    r.add_argument("--table", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.step == "ranks":
        ranks(args.table)
    elif args.step == "table":
        build_table(args.table, args.workers, args.seed, args.cache, args.regime, args.signals)
    else:
        simulate(
            args.table,
            args.samples,
            args.reps,
            args.startup,
            args.out,
            args.regime,
            args.grace,
            args.eta,
            args.first_seed,
            args.rung_metric,
            not args.run_repeats,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
