"""The search-space data model: a validated space and what it derives for the search.

`Space` is what `search.space.parse.parse_space` makes of a YAML file in
`spaces/` (the format is in that module's docstring): the searchable
parameters (`Param`, with their `when` conditions), the fixed values, the
metric(s) to select on, the searcher, scheduler, resources and final stage.
From it the search takes the Optuna define-by-run function, the grid points,
each trial's `TrainConfig` and the datasets to prepare (docs/design.md,
"Spaces"). Every refusal is a `SpaceError` (a `ValueError`) naming
the file, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sed.config import TrainConfig, apply_overrides
from sed.errors import UserError
from sed.eval.scores import VALIDATION_SCORE_NAMES

from .. import trial_spec

#: Metrics the trainable reports every epoch that a space may select on.
SELECTABLE_METRICS: tuple[str, ...] = VALIDATION_SCORE_NAMES
#: The `params:` distributions (`Param.kind`).
DISTRIBUTIONS: tuple[str, ...] = ("choice", "uniform", "loguniform", "int", "value")
#: TrainConfig keys that change which data/features a trial reads (prepared in the driver).
DATA_KEYS = (
    "data",
    "layout",
    "embedded_size",
    "embedded_seed",
    "skip_missing_audio",
    "val_fraction",
    "split_seed",
    "n_mels",
)


class SpaceError(UserError):
    """A search-space file is wrong; the message names the file, the key and the fix."""


# ----------------------------------------------------------------------------
# dataclasses
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One searchable parameter: a distribution and an optional condition."""

    name: str
    kind: str  # one of DISTRIBUTIONS
    choices: tuple[Any, ...] = ()  # choice
    low: float | int | None = None  # uniform, loguniform, int
    high: float | int | None = None
    log: bool = False  # int only (loguniform is always log)
    value: Any = None  # value
    #: key -> allowed values; all keys must hold for the parameter to be sampled.
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, known: Mapping[str, Any]) -> bool:
        """True when every `when` key is known and has one of the allowed values."""
        return all(key in known and matches(known[key], allowed) for key, allowed in self.when)

    def possible_values(self) -> tuple[Any, ...] | None:
        """Discrete values this parameter can take (None for continuous ranges)."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "value":
            return (self.value,)
        return None

    def describe(self) -> str:
        if self.kind == "choice":
            text = f"choice {list(self.choices)}"
        elif self.kind == "value":
            text = f"value {self.value!r}"
        elif self.kind == "int":
            text = f"int [{self.low}, {self.high}]" + (" log" if self.log else "")
        else:
            text = f"{self.kind} [{self.low:g}, {self.high:g}]"
        if self.when:
            cond = " and ".join(f"{k} in {list(v)}" if len(v) > 1 else f"{k}={v[0]}" for k, v in self.when)
            text += f" when {cond}"
        return text


@dataclass(frozen=True)
class SearcherSpec:
    kind: str = "optuna-tpe"
    seed: int = 0
    n_startup_trials: int | None = None
    #: A configuration this search has already run is not trained again: the study is told that
    #: trial's result and samples anew (search.searchers.RecordingOptunaSearch). Default: on for
    #: TPE, which re-proposes its best configurations in a discrete space; off for random search,
    #: which by definition samples each trial independently.
    skip_repeats: bool = True


@dataclass(frozen=True)
class SchedulerSpec:
    kind: str = "asha"
    max_epochs: int = 30
    grace_period: int = 1
    reduction_factor: float = 3.0
    #: The validation score ASHA compares at its rungs (its best so far), when not the space's
    #: metric (None: the metric). A threshold-free score such as `val_frame_ap` ranks early
    #: epochs, where the event F1 is still ~0 (benchmarks/README.md, "Search efficiency").
    rung_metric: str | None = None


@dataclass(frozen=True)
class ResourceSpec:
    cpu: float = 1.0
    #: A GPU fraction per trial, or "auto".
    gpu: float | str = "auto"
    #: with gpu auto: trials sharing one GPU (None: search.packing.DEFAULT_TRIALS_PER_GPU)
    trials_per_gpu: int | None = None


#: `final.control: none`: the space's fixed values with the supervised-only
#: objective (eq. 4: no augmentation, no consistency term), Table 1's row 1.
CONTROL_NONE: dict[str, Any] = {
    "augmentation": "none",
    "locations": "input",
    "regularization": "none",
    "consistency_weight": 0.0,
}
#: config_id / label of the control's rows in final.parquet and final_summary.parquet.
CONTROL_ID = "control"


@dataclass(frozen=True)
class FinalSpec:
    top_k: int
    seeds: tuple[int, ...]
    epochs: int
    #: TrainConfig overrides of the control run beside the top-k (on top of the
    #: space's fixed values), or None for no control.
    control: dict[str, Any] | None = None
    control_label: str = ""
    #: tune the post-processing per class on each final run's validation scores (search.postprocess)
    postprocess: bool = False
    #: Hyperparameters that form groups (e.g. augmentation, locations): the final stage
    #: then takes the top_k best configurations of *each* group, not the top_k overall.
    per_group: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """One group of a `groups:` space (`search.space.groups`): its own search over the params it leaves open."""

    name: str
    #: TrainConfig values every trial of the group gets (on top of the space's fixed values)
    values: dict[str, Any]
    #: its trial budget: the space's per-group num_samples, or 1 when nothing is searched
    num_samples: int
    #: False: trained once at its values (a `reference` group, or no param applies to it)
    searched: bool = True


@dataclass(frozen=True)
class GridPoint:
    """One configuration of a grid space: a label and its TrainConfig overrides."""

    label: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Space:
    """A validated search space (file format: `search.space.parse`)."""

    path: Path
    text: str
    name: str
    description: str
    metrics: tuple[str, ...]
    mode: str
    num_samples: int
    searcher: SearcherSpec
    scheduler: SchedulerSpec
    resources: ResourceSpec
    max_concurrent: int | None
    max_failures: int
    fixed: dict[str, Any]
    params: dict[str, Param]
    grid: tuple[GridPoint, ...] = ()
    final: FinalSpec | None = None
    #: where the Optuna study lives (`storage:`; None = the experiment's journal file)
    storage: str | None = None
    #: `groups:`: one search per group (search.space.groups); num_samples is then their total
    groups: tuple[Group, ...] = ()
    #: meta keys (`search.trial_spec`) every trial config of this space carries (a group's `_group`)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    # -- derived -------------------------------------------------------
    @property
    def metric(self) -> str:
        """The selection metric that drives the searcher, ASHA and the top-k."""
        return self.metrics[0]

    @property
    def tune_metric(self) -> str:
        """The key Optuna and ASHA read: the trial's best-so-far value of `metric`.

        The leaderboard ranks a trial on its best epoch (`rows.best_of`), so
        the searcher and the scheduler are told the same number: the
        trainable reports `best_<metric>`, the maximum over the epochs so far
        (the selectable metrics are scores, higher is better). With
        `mode: min` they read the last value, as Tune does by default.
        """
        return f"best_{self.metric}" if self.mode == "max" else self.metric

    @property
    def rung_tune_metric(self) -> str:
        """The key ASHA reads at its rungs: `tune_metric`, or the best so far of `scheduler.rung_metric`
        (the validation scores are all higher-is-better, so that one is read with mode max)."""
        rung = self.scheduler.rung_metric
        return self.tune_metric if rung is None or rung == self.metric else f"best_{rung}"

    @property
    def tune_metrics(self) -> tuple[str, ...]:
        """`tune_metric` of every selection metric: the objectives of a multi-objective Optuna study."""
        return tuple(f"best_{m}" if self.mode == "max" else m for m in self.metrics)

    @property
    def is_grid(self) -> bool:
        return self.searcher.kind == "grid"

    def constants(self) -> dict[str, Any]:
        """Values every trial gets: the fixed ones plus `epochs` = scheduler.max_epochs."""
        return {**plain(self.fixed), "epochs": self.scheduler.max_epochs}

    def define_by_run(self, trial: Any) -> dict[str, Any]:
        """Optuna define-by-run function (OptunaSearch `space=`).

        Suggests each parameter whose `when` holds, in file order, and returns
        the constants (fixed values, `epochs`, `value:` params) so that Ray
        merges them into the trial config. Inactive parameters are never
        suggested, so TPE does not model values that would be ignored.
        """
        known: dict[str, Any] = dict(self.fixed)
        constants = self.constants()
        for param in self.params.values():
            if not param.active(known):
                continue
            if param.kind == "choice":
                value = trial.suggest_categorical(param.name, list(param.choices))
            elif param.kind == "uniform":
                value = trial.suggest_float(param.name, float(param.low), float(param.high))
            elif param.kind == "loguniform":
                value = trial.suggest_float(param.name, float(param.low), float(param.high), log=True)
            elif param.kind == "int":
                value = trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
            else:  # value
                value = param.value
                constants[param.name] = plain(value)
            known[param.name] = value
        return {**constants, **self.meta}

    def grid_configs(self) -> list[GridPoint]:
        """Every point of a grid space: presets/configs, then the product of params."""
        return list(self.grid)

    def trial_overrides(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Fixed values + epochs + sampled ones, meta keys (leading '_') dropped."""
        out = self.constants()
        out.update(trial_spec.overrides_of(sampled))
        return out

    def sample_config(self, sampled: Mapping[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial: fixed values and `sampled` applied and validated."""
        return apply_overrides(TrainConfig(), self.trial_overrides(sampled))

    def base_config(self) -> TrainConfig:
        """TrainConfig with only the fixed values (and epochs) applied."""
        return apply_overrides(TrainConfig(), self.constants())

    def data_configs(self) -> list[TrainConfig]:
        """One config per distinct dataset the trials will read (for prebuilding features)."""
        base = self.base_config()
        variants: list[dict[str, Any]] = [{}]
        for param in self.params.values():
            if param.name in DATA_KEYS and param.possible_values() is not None:
                variants = [{**v, param.name: x} for v in variants for x in param.possible_values()]
        for point in self.grid:
            data_part = {k: v for k, v in point.overrides.items() if k in DATA_KEYS}
            if data_part:
                variants.append(data_part)
        seen: dict[tuple, TrainConfig] = {}
        for variant in variants:
            cfg = apply_overrides(base, variant)
            seen.setdefault(tuple(getattr(cfg, k) for k in DATA_KEYS), cfg)
        return list(seen.values())

    def with_overrides(self, num_samples: int | None = None, max_epochs: int | None = None) -> Space:
        """Apply the command-line `--num-samples` / `--max-epochs` and re-check the space."""
        space = self
        if num_samples is not None:
            if self.is_grid:
                raise SpaceError(
                    f"{self.path}: --num-samples does not apply to a grid space (searcher.kind: grid "
                    "runs each of its points once); leave it out"
                )
            if num_samples < 1:
                raise SpaceError(f"--num-samples {num_samples}: give a number >= 1")
            groups = tuple(dataclasses.replace(g, num_samples=num_samples if g.searched else 1) for g in self.groups)
            total = sum(g.num_samples for g in groups) if groups else num_samples
            space = dataclasses.replace(space, num_samples=total, groups=groups)
        if max_epochs is not None:
            if max_epochs < 1:
                raise SpaceError(f"--max-epochs {max_epochs}: give a number >= 1")
            scheduler = dataclasses.replace(
                space.scheduler,
                max_epochs=max_epochs,
                grace_period=min(space.scheduler.grace_period, max_epochs),
            )
            final = space.final
            if final is not None:
                final = dataclasses.replace(final, epochs=min(final.epochs, max_epochs))
            space = dataclasses.replace(space, scheduler=scheduler, final=final)
            # fixed `epochs` (if any) follows the override; re-check the grid with it
            if "epochs" in space.fixed:
                space = dataclasses.replace(space, fixed={**space.fixed, "epochs": max_epochs})
        budget = max((g.num_samples for g in space.groups), default=space.num_samples)  # per group with groups
        if space.final is not None and space.final.top_k > budget:
            raise SpaceError(
                f"{self.path}: final.top_k={space.final.top_k} is larger than num_samples="
                f"{budget}; lower final.top_k or raise --num-samples"
            )
        return space

    def summary(self) -> str:
        """A few human-readable lines describing the space."""
        lines = [
            f"space {self.name!r} ({self.path}): {self.description.strip()}".rstrip(": "),
            f"  select on {'/'.join(self.metrics)} ({self.mode}); searcher {self.searcher.kind}"
            + ("" if self.is_grid else f" seed {self.searcher.seed}, {self.num_samples} samples")
            + (f" over {len(self.groups)} groups, a search each" if self.groups else "")
            + f"; scheduler {self.scheduler.kind}, max {self.scheduler.max_epochs} epochs",
        ]
        for name, value in self.fixed.items():
            lines.append(f"  fixed  {name} = {value!r}")
        for param in self.params.values():
            lines.append(f"  param  {param.name}: {param.describe()}")
        for point in self.grid:
            lines.append(f"  point  {point.label}")
        for group in self.groups:
            searched = f"{group.num_samples} trials" if group.searched else "1 trial at its values"
            lines.append(f"  group  {group.name}: {searched}")
        if self.final is not None:
            lines.append(
                f"  final: top {self.final.top_k} x seeds {list(self.final.seeds)}, "
                f"{self.final.epochs} epochs, scored on public_eval"
                + (
                    f"; plus the {self.final.control_label} with the same seeds"
                    if self.final.control is not None
                    else ""
                )
            )
        return "\n".join(lines)


# ----------------------------------------------------------------------------
# values
# ----------------------------------------------------------------------------
def matches(value: Any, allowed: tuple[Any, ...]) -> bool:
    """`value` is one of `allowed` (booleans only match booleans: True is not 1)."""
    for option in allowed:
        if isinstance(option, bool) or isinstance(value, bool):
            if value is option:
                return True
        elif option == value:
            return True
    return False


def plain(value: Any) -> Any:
    """Tuples -> lists so that configs are JSON/Ray friendly."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def config_id(overrides: Mapping[str, Any]) -> str:
    """A stable short id of a set of overrides (meta keys and seed/epochs ignored)."""
    core = {k: plain(v) for k, v in sorted(trial_spec.overrides_of(overrides).items()) if k not in ("seed", "epochs")}
    text = json.dumps(core, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]
