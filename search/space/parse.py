"""Reading a space file: YAML text -> a validated `Space`, or one `SpaceError`.

A space names the hyperparameters to search (the `sed.config.TrainConfig`
field names), their distributions, the values that stay fixed, the metric
to select on, the searcher, the ASHA settings, per-trial resources and the
final stage (docs/design.md, "Spaces"). Every refusal is a
`SpaceError` (a `ValueError`) whose message names the file, the key and
the fix, raised by `load_space` -- never halfway through a Ray run. The
section parsers below run in file order; `params:` entries are read by
`search.space.params`, grids by `search.space.grid`.

File format (YAML, read with `yaml.safe_load`)::

    name: latent                      # experiment name (default: the file stem); [A-Za-z0-9_.-]
    description: free text
    metric: val_macro_f1              # or val_psds (needs `compute_val_psds: true` in fixed),
                                      # or val_psds1 (threshold-free PSDS1, needs
                                      # `compute_val_psds1: true` in fixed),
                                      # or [val_macro_f1, val_psds]: a two-objective Optuna
                                      # study (its best_trials: the Pareto front of the summary
                                      # and report); the first one drives ASHA, the top-k and
                                      # each trial's best-epoch selection (set as fixed
                                      # `selection_metric` when it is not val_macro_f1)
    mode: max                         # max | min
    num_samples: 32                   # trials sampled by the searcher (not for kind: grid; with
                                      # groups: groups.num_samples, the trials of each group)
    searcher: {kind: optuna-tpe, seed: 0}   # optuna-tpe | optuna-random | grid
                                      # [, n_startup_trials, skip_repeats]: skip_repeats
                                      # (default true for TPE) does not train a config again
                                      # (the study is told the earlier result)
                                      # grid: no sampling; runs `presets:` (names of
                                      # sed.presets.ALL_PRESETS, or `all` = Table 1's
                                      # sed.presets.PRESETS), `configs:` (a list of
                                      # override mappings, each with an optional `name`) and
                                      # the cartesian product of `choice`/`value` params
    scheduler: {kind: asha, max_epochs: 30, grace_period: 5, reduction_factor: 3}
                                      # or {kind: fifo, max_epochs: 30}; max_epochs is the
                                      # epochs of every search trial (TrainConfig.epochs);
                                      # asha's optional rung_metric: the score ASHA compares
                                      # at its rungs (best so far) when it is not the space's
                                      # metric, e.g. val_frame_ap (needs
                                      # `compute_val_frame_ap: true` in fixed), which ranks
                                      # early epochs where the event F1 is still ~0; Optuna,
                                      # the top-k and each trial's best epoch stay on `metric`
    resources: {cpu: 1, gpu: auto}    # per trial; gpu: a fraction, 0, or auto (= 1/trials_per_gpu
                                      # of a GPU when the cluster has GPUs, else 0); trials_per_gpu:
                                      # optional with auto (default: search.packing.DEFAULT_TRIALS_PER_GPU = 1,
                                      # 4 for the eager step, measured; --trials-per-gpu overrides). A gpu > 0 on
                                      # a cluster without GPUs is refused before any trial runs.
    max_concurrent: 8                 # optional cap on trials at once (default: every GPU busy at
                                      # trials_per_gpu, bounded by the CPUs // resources.cpu)
    max_failures: 0                   # retries of a failed trial (default 0): a retry resumes
                                      # from the last epoch's checkpoint (a lost node, a killed
                                      # worker); a deterministic failure (TrainingDiverged)
                                      # fails again, costing at most one epoch per retry
    fixed: {regularization: l2, cnn_filters: [16, 32, 64, 128, 128, 128, 128]}
    params:                           # order matters: `when` may only name fixed keys or
                                      # params listed above it
      augmentation: {choice: [random, adversarial, vat, mixup]}
      locations: {choice: [cnn, rnn, latent]}
      noise_scale: {loguniform: [0.01, 1.0], when: {augmentation: random}}
      epsilon: {loguniform: [0.01, 1.0], when: {augmentation: [adversarial, vat]}}
      mixup_alpha: {uniform: [0.1, 1.0], when: {augmentation: mixup}}
      vat_iters: {int: [1, 3], when: {augmentation: vat}}      # int: [lo, hi], optional log: true
      xi: {value: 0.001, when: {augmentation: vat}}             # constant (still a column)
      consistency_weight: {loguniform: [0.1, 10.0]}
      l2: {loguniform: [1.0e-7, 1.0e-3], when: {regularization: l2}}
    final: {top_k: 3, seeds: [1, 2, 3], epochs: 30}   # optional; absent = no final stage
                                      # final.per_group: [augmentation, locations] -> the top_k (default 1)
                                      # best configs of each combination of those keys' values
                                      # final.control: none -> also train the space's fixed
                                      # values with the supervised-only objective (no
                                      # augmentation, no consistency term) with the same seeds
                                      # and epochs, the no-augmentation control the summary
                                      # compares the best config with; or a mapping of
                                      # overrides (optional `name`) for another control;
                                      # final.postprocess: true -> then tune the median window and
                                      # threshold per class on each final run's validation scores and
                                      # score the public evaluation set with them (search.postprocess)
    groups: {num_samples: 12, presets: [none, baseline, vat-input-l2], reference: [baseline]}
                                      # optional: a search per group (its own study, scheduler and
                                      # budget; format: search/space/groups.py), then the best of each
                                      # group in the final stage; replaces the top-level num_samples
    storage: sqlite:////shared/sedtune.db   # optional: the Optuna study in a shared database URL
                                      # or journal file (default: OUT/NAME/optuna.journal);
                                      # search.run --storage overrides it (search.study_storage)

Conditional parameters are sampled only when every key of their `when`
holds (Optuna define-by-run, `Space.define_by_run`); otherwise they are not
suggested at all and the trial uses the TrainConfig default. A condition on
`augmentation` may only name augmentations that read the parameter (which
augmentation reads which field is `sed.augment`' registry). Every fixed
value, every choice, both bounds of every range, and every combination of
the discrete parameters are checked with `sed.config.apply_overrides`
before anything starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sed.config import TrainConfig
from sed.eval.scores import SCORES, VALIDATION_SCORES

from .checks import (
    Context,
    apply,
    boolean,
    check_keys,
    check_named_value,
    config_key,
    integer,
    mapping,
    number,
    parse_storage,
    suggest,
    yaml_number,
)
from .final_section import parse_final
from .grid import check_combinations, grid_or_samples
from .groups import check_sampling_keys, finish_groups, group_keys, read_groups
from .model import (
    SELECTABLE_METRICS,
    Param,
    ResourceSpec,
    SchedulerSpec,
    SearcherSpec,
    Space,
    SpaceError,
    plain,
)
from .params import parse_param
from .rampup import check_first_rung

SEARCHER_KINDS: tuple[str, ...] = ("optuna-tpe", "optuna-random", "grid")
SCHEDULER_KINDS: tuple[str, ...] = ("asha", "fifo")
TOP_LEVEL_KEYS: tuple[str, ...] = (
    "name",
    "description",
    "metric",
    "mode",
    "num_samples",
    "searcher",
    "scheduler",
    "resources",
    "max_concurrent",
    "max_failures",
    "fixed",
    "params",
    "presets",
    "configs",
    "final",
    "storage",
    "groups",
)
SEARCHER_KEYS = ("kind", "seed", "n_startup_trials", "skip_repeats")
SCHEDULER_KEYS = ("kind", "max_epochs", "grace_period", "reduction_factor", "rung_metric")
RESOURCE_KEYS = ("cpu", "gpu", "trials_per_gpu")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_space(text: str, path: Path | str = "<space>") -> Space:
    """Parse and validate the YAML `text` of a space (`path` is used in messages)."""
    path = Path(path)
    ctx = Context(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpaceError(f"{path}: {where}YAML syntax error: {problem}; fix the YAML at that place") from None
    if not isinstance(data, Mapping):
        raise SpaceError(
            f"{path}: expected a YAML mapping with keys such as name, metric, params; got {type(data).__name__}"
        )
    check_keys(ctx, "", data, TOP_LEVEL_KEYS)

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ctx.error("name", f"{name!r} must be a non-empty name of letters, digits, '_', '-', '.'")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise ctx.error("description", "expected text")
    metrics, mode = _metrics(ctx, data)
    searcher = _searcher(ctx, data.get("searcher"))
    scheduler = _scheduler(ctx, data.get("scheduler"))
    resources = _resources(ctx, data.get("resources"))
    max_concurrent = data.get("max_concurrent")
    if max_concurrent is not None:
        max_concurrent = integer(ctx, "max_concurrent", max_concurrent, 1)
    max_failures = integer(ctx, "max_failures", data.get("max_failures", 0), 0)
    rung_metrics = () if scheduler.rung_metric is None else (scheduler.rung_metric,)
    fixed, base = _fixed(ctx, data.get("fixed"), scheduler.max_epochs, metrics, rung_metrics)
    if "groups" in data:
        raw_groups, budgets, reference = read_groups(ctx, data["groups"], fixed)
        check_sampling_keys(ctx, data, searcher.kind)
        params = _params(ctx, data.get("params"), fixed, base, group_keys(raw_groups))
        groups = finish_groups(ctx, raw_groups, budgets, reference, base, fixed, params)
        grid, num_samples = [], sum(g.num_samples for g in groups)
        per_group = max(g.num_samples for g in groups)
        overrides = [g.values for g in groups]
    else:
        params = _params(ctx, data.get("params"), fixed, base)
        grid, num_samples = grid_or_samples(ctx, data, searcher.kind, fixed, params, base)
        groups, per_group, overrides = (), num_samples, [p.overrides for p in grid]
    grid_rampups = [float(o["rampup_epochs"]) for o in overrides if "rampup_epochs" in o]
    check_first_rung(ctx, scheduler, base, fixed, params, grid_rampups)
    final = parse_final(ctx, data.get("final"), per_group, scheduler.max_epochs, base, grouped=bool(groups))
    storage = parse_storage(ctx, data.get("storage"), searcher.kind)
    return Space(
        path=path,
        text=text,
        name=name,
        description=description,
        metrics=metrics,
        mode=mode,
        num_samples=num_samples,
        searcher=searcher,
        scheduler=scheduler,
        resources=resources,
        max_concurrent=max_concurrent,
        max_failures=max_failures,
        fixed=fixed,
        params=params,
        grid=tuple(grid),
        final=final,
        storage=storage,
        groups=groups,
    )


def load_space(path: Path | str) -> Space:
    """Read and validate a space file; every problem is a `SpaceError` naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such space file; give a path such as spaces/demo.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read the space file ({exc}); check the path and its encoding") from None
    return parse_space(text, path.resolve())


# ----------------------------------------------------------------------------
# sections, in the order they are checked
# ----------------------------------------------------------------------------
def _metrics(ctx: Context, data: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    metric_raw = data.get("metric", "val_macro_f1")
    metrics = tuple(metric_raw) if isinstance(metric_raw, list) else (metric_raw,)
    if not metrics:
        raise ctx.error("metric", f"give one of {list(SELECTABLE_METRICS)} or a list of them")
    for m in metrics:
        if m not in SELECTABLE_METRICS:
            raise ctx.error(
                "metric",
                f"{m!r} is not reported during the search{suggest(str(m), SELECTABLE_METRICS)}; choose from "
                f"{list(SELECTABLE_METRICS)} (eval metrics are only computed in the final stage)",
            )
    if len(set(metrics)) != len(metrics):
        raise ctx.error("metric", f"duplicate metrics in {list(metrics)}")
    mode = data.get("mode", "max")
    if mode not in ("min", "max"):
        raise ctx.error("mode", f"{mode!r}: use max or min")
    return metrics, mode


def _searcher(ctx: Context, raw: Any) -> SearcherSpec:
    searcher_raw = mapping(ctx, "searcher", raw, "{kind: optuna-tpe, seed: 0}")
    check_keys(ctx, "searcher", searcher_raw, SEARCHER_KEYS)
    kind = searcher_raw.get("kind", "optuna-tpe")
    if kind not in SEARCHER_KINDS:
        raise ctx.error(
            "searcher.kind", f"{kind!r}{suggest(str(kind), SEARCHER_KINDS)}; choose from {list(SEARCHER_KINDS)}"
        )
    n_startup = searcher_raw.get("n_startup_trials")
    skip_repeats = boolean(ctx, "searcher.skip_repeats", searcher_raw.get("skip_repeats", kind == "optuna-tpe"))
    if skip_repeats and kind == "grid":
        raise ctx.error("searcher.skip_repeats", "a grid runs each of its configurations once already; remove it")
    startup = None if n_startup is None else integer(ctx, "searcher.n_startup_trials", n_startup, 1)
    return SearcherSpec(kind, integer(ctx, "searcher.seed", searcher_raw.get("seed", 0), 0), startup, skip_repeats)


def _scheduler(ctx: Context, raw: Any) -> SchedulerSpec:
    sched_raw = mapping(ctx, "scheduler", raw, "{kind: asha, max_epochs: 30, grace_period: 5}")
    check_keys(ctx, "scheduler", sched_raw, SCHEDULER_KEYS)
    skind = sched_raw.get("kind", "asha")
    if skind not in SCHEDULER_KINDS:
        raise ctx.error("scheduler.kind", f"{skind!r}; choose from {list(SCHEDULER_KINDS)}")
    if "max_epochs" not in sched_raw:
        raise ctx.error("scheduler.max_epochs", "missing; give the epochs of a full search trial, e.g. max_epochs: 30")
    max_epochs = integer(ctx, "scheduler.max_epochs", sched_raw["max_epochs"], 1)
    if skind == "fifo":
        for k in ("grace_period", "reduction_factor", "rung_metric"):
            if k in sched_raw:
                raise ctx.error(f"scheduler.{k}", "only applies to kind: asha; remove it or use kind: asha")
    grace = integer(ctx, "scheduler.grace_period", sched_raw.get("grace_period", 1), 1)
    if grace > max_epochs:
        raise ctx.error("scheduler.grace_period", f"{grace} > max_epochs {max_epochs}; use grace_period <= max_epochs")
    rf = number(ctx, "scheduler.reduction_factor", sched_raw.get("reduction_factor", 3))
    if rf <= 1:
        raise ctx.error("scheduler.reduction_factor", f"{rf} must be > 1 (ASHA keeps 1/reduction_factor per rung)")
    rung_metric = sched_raw.get("rung_metric")
    if rung_metric is not None and rung_metric not in SELECTABLE_METRICS:
        raise ctx.error(
            "scheduler.rung_metric", f"{rung_metric!r}; choose a validation score from {list(SELECTABLE_METRICS)}"
        )
    return SchedulerSpec(
        kind=skind, max_epochs=max_epochs, grace_period=grace, reduction_factor=float(rf), rung_metric=rung_metric
    )


def _resources(ctx: Context, raw: Any) -> ResourceSpec:
    res_raw = mapping(ctx, "resources", raw, "{cpu: 1, gpu: auto}")
    check_keys(ctx, "resources", res_raw, RESOURCE_KEYS)
    cpu = number(ctx, "resources.cpu", res_raw.get("cpu", 1))
    if cpu <= 0:
        raise ctx.error("resources.cpu", f"{cpu} must be > 0")
    gpu = res_raw.get("gpu", "auto")
    if gpu != "auto":
        gpu = number(ctx, "resources.gpu", gpu)
        if gpu < 0:
            raise ctx.error("resources.gpu", f"{gpu} must be >= 0 (or auto)")
        if gpu > 1 and not float(gpu).is_integer():
            raise ctx.error("resources.gpu", f"{gpu}: fractions are only allowed below 1 GPU")
    per_gpu = res_raw.get("trials_per_gpu")
    if per_gpu is not None:
        per_gpu = integer(ctx, "resources.trials_per_gpu", per_gpu, 1)
        if gpu != "auto":
            raise ctx.error(
                "resources.trials_per_gpu",
                f"is for gpu: auto; gpu: {gpu} already says the share "
                f"of a GPU per trial (gpu: {1 / per_gpu:.3g} = {per_gpu} per GPU): keep one of them",
            )
    return ResourceSpec(cpu=float(cpu), gpu=gpu, trials_per_gpu=per_gpu)


def _fixed(
    ctx: Context, raw: Any, max_epochs: int, metrics: tuple[str, ...], rung_metrics: tuple[str, ...] = ()
) -> tuple[dict[str, Any], TrainConfig]:
    """(fixed values, the TrainConfig of the fixed values and max_epochs)."""
    fixed_raw = mapping(ctx, "fixed", raw, "{regularization: l2}")
    fixed: dict[str, Any] = {}
    for key, value in fixed_raw.items():
        key = config_key(ctx, "fixed", key)
        check_named_value(ctx, f"fixed.{key}", key, value)
        fixed[key] = plain(yaml_number(key, value))
    if "epochs" in fixed and fixed["epochs"] != max_epochs:
        raise ctx.error(
            "fixed.epochs",
            f"{fixed['epochs']} differs from scheduler.max_epochs {max_epochs}; a search trial runs "
            "max_epochs epochs, so remove fixed.epochs or make them equal",
        )
    base = apply(ctx, "fixed", TrainConfig(), {**fixed, "epochs": max_epochs})
    for key, score_names in (("metric", metrics), ("scheduler.rung_metric", rung_metrics)):
        for name in score_names:
            flag = SCORES[name].flag
            if flag is not None and not getattr(base, flag):
                raise ctx.error(
                    key,
                    f"{name} is only reported when it is computed at every validation ({SCORES[name].cost}); "
                    f"add `{flag}: true` under fixed, or use val_macro_f1",
                )
    # Each trial keeps the epoch that is best by the metric the search ranks it on.
    if "selection_metric" in fixed and fixed["selection_metric"] != metrics[0]:
        raise ctx.error(
            "fixed.selection_metric",
            f"{fixed['selection_metric']!r} differs from the space's metric {metrics[0]!r}; a trial selects "
            "its best epoch on the space's (first) metric, so remove fixed.selection_metric",
        )
    if metrics[0] != "val_macro_f1":
        fixed["selection_metric"] = metrics[0]
    base = apply(ctx, "fixed", TrainConfig(), {**fixed, "epochs": max_epochs})
    return fixed, base


def _params(
    ctx: Context, raw: Any, fixed: Mapping[str, Any], base: TrainConfig, group_keys: Mapping[str, Param] | None = None
) -> dict[str, Param]:
    """`params:`; with `group_keys` (a grouped space) conditions may name the groups' keys, and each
    group's combinations are checked with its own values (`search.space.groups.finish_groups`)."""
    params_raw = mapping(ctx, "params", raw, "{epsilon: {loguniform: [0.01, 1.0]}}")
    params: dict[str, Param] = {}
    for pname, spec in params_raw.items():
        config_key(ctx, "params", pname)
        params[pname] = parse_param(ctx, pname, spec, {**(group_keys or {}), **params}, fixed)
    for flag in (*(s.flag for s in VALIDATION_SCORES if s.flag is not None), "selection_metric"):
        if flag in params:
            raise ctx.error(f"params.{flag}", f"{flag} is not a hyperparameter; set it under fixed")
    if group_keys is None:
        check_combinations(ctx, base, params, fixed)
    return params
