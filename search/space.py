"""Search spaces: YAML files in `spaces/`, loaded and validated before Ray starts.

A space names the hyperparameters to search (the `sed.config.TrainConfig`
field names), their distributions, the values that stay fixed, the metric
to select on, the searcher, the ASHA settings, per-trial resources and the
final stage (DESIGN.md, "search: Spaces"). Every refusal is a
`SpaceError` (a `ValueError`) whose message names the file, the key and
the fix, raised by `load_space` -- never halfway through a Ray run.

File format (YAML, read with `yaml.safe_load`)::

    name: latent                      # experiment name (default: the file stem); [A-Za-z0-9_.-]
    description: free text
    metric: val_macro_f1              # or val_psds (needs `val_psds: true` in fixed),
                                      # or [val_macro_f1, val_psds]: the first one drives the
                                      # searcher, ASHA and the top-k; the summary adds the
                                      # Pareto front over both
    mode: max                         # max | min
    num_samples: 32                   # trials sampled by the searcher (not for kind: grid)
    searcher: {kind: optuna-tpe, seed: 0}   # optuna-tpe | optuna-random | grid
                                      # grid: no sampling; runs `presets:` (names of
                                      # sed.config.PRESETS or `all`), `configs:` (a list of
                                      # override mappings, each with an optional `name`) and
                                      # the cartesian product of `choice`/`value` params
    scheduler: {kind: asha, max_epochs: 30, grace_period: 5, reduction_factor: 3}
                                      # or {kind: fifo, max_epochs: 30}; max_epochs is the
                                      # epochs of every search trial (TrainConfig.epochs)
    resources: {cpu: 1, gpu: auto}    # per trial; gpu: a fraction, 0, or auto (= 1/max_concurrent
                                      # of a GPU when the cluster has GPUs, else 0). A gpu > 0 on
                                      # a cluster without GPUs is refused before any trial runs.
    max_concurrent: 2                 # trials at once (default: cluster CPUs // resources.cpu)
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

Conditional parameters are sampled only when every key of their `when`
holds (Optuna define-by-run, `Space.define_by_run`); otherwise they are not
suggested at all and the trial uses the TrainConfig default. Every fixed
value, every choice, both bounds of every range, and every combination of
the discrete parameters are checked with `sed.config.apply_overrides`
before anything starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from sed.config import (
    AUGMENTATIONS,
    FIELD_TYPES,
    LOCATION_ALIASES,
    LOCATIONS,
    PRESETS,
    REGULARIZATIONS,
    ConfigError,
    TrainConfig,
    apply_overrides,
)

#: Metrics the trainable reports every epoch that a space may select on.
SELECTABLE_METRICS: tuple[str, ...] = ("val_macro_f1", "val_psds")
SEARCHER_KINDS: tuple[str, ...] = ("optuna-tpe", "optuna-random", "grid")
SCHEDULER_KINDS: tuple[str, ...] = ("asha", "fifo")
DISTRIBUTIONS: tuple[str, ...] = ("choice", "uniform", "loguniform", "int", "value")

TOP_LEVEL_KEYS: tuple[str, ...] = (
    "name", "description", "metric", "mode", "num_samples", "searcher", "scheduler",
    "resources", "max_concurrent", "max_failures", "fixed", "params", "presets", "configs",
    "final",
)
SEARCHER_KEYS = ("kind", "seed", "n_startup_trials")
SCHEDULER_KEYS = ("kind", "max_epochs", "grace_period", "reduction_factor")
RESOURCE_KEYS = ("cpu", "gpu")
FINAL_KEYS = ("top_k", "seeds", "epochs")
PARAM_KEYS = DISTRIBUTIONS + ("when", "log")
#: Keys the search itself controls; a space may not sample them.
RESERVED_PARAMS = ("epochs",)
#: Combinations of discrete values checked exhaustively up to this many.
MAX_COMBINATIONS_CHECKED = 20000
#: TrainConfig keys that change which data/features a trial reads (prepared in the driver).
DATA_KEYS = ("data", "embedded_size", "embedded_seed", "skip_missing_audio", "val_fraction", "split_seed")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class SpaceError(ValueError):
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
        return all(key in known and _matches(known[key], allowed) for key, allowed in self.when)

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
            cond = " and ".join(
                f"{k} in {list(v)}" if len(v) > 1 else f"{k}={v[0]}" for k, v in self.when
            )
            text += f" when {cond}"
        return text


@dataclass(frozen=True)
class SearcherSpec:
    kind: str = "optuna-tpe"
    seed: int = 0
    n_startup_trials: int | None = None


@dataclass(frozen=True)
class SchedulerSpec:
    kind: str = "asha"
    max_epochs: int = 30
    grace_period: int = 1
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class ResourceSpec:
    cpu: float = 1.0
    #: A GPU fraction per trial, or "auto".
    gpu: float | str = "auto"


@dataclass(frozen=True)
class FinalSpec:
    top_k: int
    seeds: tuple[int, ...]
    epochs: int


@dataclass(frozen=True)
class GridPoint:
    """One configuration of a grid space: a label and its TrainConfig overrides."""

    label: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Space:
    """A validated search space (see the module docstring for the file format)."""

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

    # -- derived -------------------------------------------------------
    @property
    def metric(self) -> str:
        """The selection metric that drives the searcher, ASHA and the top-k."""
        return self.metrics[0]

    @property
    def is_grid(self) -> bool:
        return self.searcher.kind == "grid"

    def constants(self) -> dict[str, Any]:
        """Values every trial gets: the fixed ones plus `epochs` = scheduler.max_epochs."""
        return {**_plain(self.fixed), "epochs": self.scheduler.max_epochs}

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
                constants[param.name] = _plain(value)
            known[param.name] = value
        return constants

    def grid_configs(self) -> list[GridPoint]:
        """Every point of a grid space: presets/configs, then the product of params."""
        return list(self.grid)

    def trial_overrides(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Fixed values + epochs + sampled ones, meta keys (leading '_') dropped."""
        out = self.constants()
        out.update({k: v for k, v in sampled.items() if not k.startswith("_")})
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

    def with_overrides(self, num_samples: int | None = None, max_epochs: int | None = None) -> "Space":
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
            space = dataclasses.replace(space, num_samples=num_samples)
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
        if space.final is not None and space.final.top_k > space.num_samples:
            raise SpaceError(
                f"{self.path}: final.top_k={space.final.top_k} is larger than num_samples="
                f"{space.num_samples}; lower final.top_k or raise --num-samples"
            )
        return space

    def summary(self) -> str:
        """A few human-readable lines describing the space."""
        lines = [
            f"space {self.name!r} ({self.path}): {self.description.strip()}".rstrip(": "),
            f"  select on {'/'.join(self.metrics)} ({self.mode}); searcher {self.searcher.kind}"
            + ("" if self.is_grid else f" seed {self.searcher.seed}, {self.num_samples} samples")
            + f"; scheduler {self.scheduler.kind}, max {self.scheduler.max_epochs} epochs",
        ]
        for name, value in self.fixed.items():
            lines.append(f"  fixed  {name} = {value!r}")
        for param in self.params.values():
            lines.append(f"  param  {param.name}: {param.describe()}")
        for point in self.grid:
            lines.append(f"  point  {point.label}")
        if self.final is not None:
            lines.append(
                f"  final: top {self.final.top_k} x seeds {list(self.final.seeds)}, "
                f"{self.final.epochs} epochs, scored on public_eval"
            )
        return "\n".join(lines)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _matches(value: Any, allowed: tuple[Any, ...]) -> bool:
    for option in allowed:
        if isinstance(option, bool) or isinstance(value, bool):
            if value is option:
                return True
        elif option == value:
            return True
    return False


def _plain(value: Any) -> Any:
    """Tuples -> lists so that configs are JSON/Ray friendly."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def config_id(overrides: Mapping[str, Any]) -> str:
    """A stable short id of a set of overrides (meta keys and seed/epochs ignored)."""
    core = {
        k: _plain(v) for k, v in sorted(overrides.items()) if not k.startswith("_") and k not in ("seed", "epochs")
    }
    text = json.dumps(core, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


class _Ctx:
    """Formats error messages: '<file>: <key>: <problem>; <fix>'."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, message: str) -> SpaceError:
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        return SpaceError(where + message)


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _check_keys(ctx: _Ctx, where: str, mapping: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in mapping:
        if not isinstance(key, str) or key not in allowed:
            raise ctx.error(
                f"{where}.{key}" if where else str(key),
                f"unknown key{_suggest(str(key), allowed)}; allowed keys: {', '.join(allowed)}",
            )


def _mapping(ctx: _Ctx, key: str, value: Any, example: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ctx.error(key, f"expected a mapping, got {type(value).__name__} {value!r}; write e.g. {example}")
    return dict(value)


def _int(ctx: _Ctx, key: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ctx.error(key, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ctx.error(key, f"{value} must be >= {minimum}")
    return value


def _number(ctx: _Ctx, key: str, value: Any) -> float:
    if isinstance(value, str):  # YAML reads 1e-7 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if not _is_number(value) or not math.isfinite(value):
        raise ctx.error(key, f"expected a finite number, got {value!r}")
    return value


def _numeric_if_text(name: str, value: Any) -> Any:
    """YAML 1.1 reads `1e-5` (no dot) as text: turn it into a number for numeric fields."""
    annotation = str(FIELD_TYPES.get(name, ""))
    if isinstance(value, str) and ("float" in annotation or annotation.startswith("int")):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if annotation.startswith("int") and number.is_integer() else number
    return value


def _config_key(ctx: _Ctx, where: str, key: Any) -> str:
    if not isinstance(key, str) or key not in FIELD_TYPES:
        raise ctx.error(
            f"{where}.{key}",
            f"not a TrainConfig field{_suggest(str(key), FIELD_TYPES)}; use one of the field names of "
            "sed.config.TrainConfig",
        )
    return key


def _check_named_value(ctx: _Ctx, key: str, name: str, value: Any) -> None:
    """Explicit checks of the objective's enumerations (clearer than a later ConfigError)."""
    table = {"augmentation": AUGMENTATIONS, "regularization": REGULARIZATIONS}
    if name in table and value not in table[name]:
        raise ctx.error(key, f"unknown {name} {value!r}{_suggest(str(value), table[name])}; choose from {list(table[name])}")
    if name == "locations":
        if not isinstance(value, str):
            raise ctx.error(key, f"locations must be a string such as 'latent' or 'input+cnn', got {value!r}")
        for part in value.replace(",", "+").split("+"):
            part = part.strip()
            if part not in LOCATIONS and part not in LOCATION_ALIASES:
                options = list(LOCATIONS) + sorted(LOCATION_ALIASES)
                raise ctx.error(
                    key,
                    f"unknown location {part!r}{_suggest(part, options)}; use a '+'-joined subset of "
                    f"{list(LOCATIONS)} or one of {sorted(LOCATION_ALIASES)}",
                )


def _apply(ctx: _Ctx, key: str, base: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    try:
        return apply_overrides(base, overrides)
    except ConfigError as exc:
        raise ctx.error(key, f"{exc}") from None
    except (TypeError, ValueError) as exc:
        raise ctx.error(key, f"invalid value: {exc}") from None


# ----------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------
def _parse_param(ctx: _Ctx, name: str, spec: Any, earlier: Mapping[str, Param], fixed: Mapping[str, Any]) -> Param:
    key = f"params.{name}"
    if name in RESERVED_PARAMS:
        raise ctx.error(
            key,
            "the number of epochs is set by scheduler.max_epochs (and final.epochs), not searched; "
            "remove it from params",
        )
    if name in fixed:
        raise ctx.error(key, "is also under fixed; keep it in one place (fixed or params)")
    if not isinstance(spec, Mapping):
        raise ctx.error(
            key,
            f"expected a mapping such as {{choice: [a, b]}}, {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, "
            f"{{int: [lo, hi]}} or {{value: x}}; got {spec!r}",
        )
    _check_keys(ctx, key, spec, PARAM_KEYS)
    kinds = [k for k in DISTRIBUTIONS if k in spec]
    if len(kinds) != 1:
        raise ctx.error(
            key,
            f"give exactly one distribution among {list(DISTRIBUTIONS)}, got {kinds or 'none'}",
        )
    kind = kinds[0]
    raw = spec[kind]
    dkey = f"{key}.{kind}"
    if "log" in spec and kind != "int":
        raise ctx.error(f"{key}.log", "log applies to int only (use loguniform for floats); remove it")
    kwargs: dict[str, Any] = {}
    if kind == "choice":
        if not isinstance(raw, list):
            raise ctx.error(dkey, f"expected a list of values, e.g. choice: [a, b]; got {raw!r}")
        if not raw:
            raise ctx.error(dkey, "the list of choices is empty; give at least one value")
        for item in raw:
            if not _is_scalar(item):
                raise ctx.error(
                    dkey,
                    f"choice {item!r} is not a scalar; Optuna choices are strings/numbers/booleans "
                    "(write lists as a comma string, e.g. '16,32,64', or move the value to fixed)",
                )
            _check_named_value(ctx, dkey, name, item)
        raw = [_numeric_if_text(name, v) for v in raw]
        if len({json.dumps(v) for v in raw}) != len(raw):
            raise ctx.error(dkey, f"duplicate values in {raw!r}; list each value once")
        kwargs["choices"] = tuple(raw)
    elif kind == "value":
        _check_named_value(ctx, dkey, name, raw)
        raw = _numeric_if_text(name, raw)
        kwargs["value"] = tuple(raw) if isinstance(raw, list) else raw
    else:
        if not isinstance(raw, list) or len(raw) != 2:
            raise ctx.error(dkey, f"expected [low, high], got {raw!r}")
        low = _number(ctx, dkey, raw[0])
        high = _number(ctx, dkey, raw[1])
        if low > high:
            raise ctx.error(dkey, f"low {low} > high {high}; write [low, high] with low <= high")
        if kind == "loguniform" and low <= 0:
            raise ctx.error(dkey, f"loguniform bounds must be > 0, got low={low}; use a positive low or uniform")
        if kind == "int":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
                raise ctx.error(dkey, f"int bounds must be integers, got {raw!r}; write e.g. int: [1, 4]")
            log = spec.get("log", False)
            if not isinstance(log, bool):
                raise ctx.error(f"{key}.log", f"expected true or false, got {log!r}")
            if log and low <= 0:
                raise ctx.error(dkey, f"int with log: true needs low >= 1, got {low}")
            kwargs["log"] = log
        elif "float" not in str(FIELD_TYPES[name]):
            raise ctx.error(
                dkey, f"TrainConfig.{name} is {FIELD_TYPES[name]}, not a float; use choice or int"
            )
        kwargs["low"], kwargs["high"] = low, high
    when_raw = spec.get("when")
    when: list[tuple[str, tuple[Any, ...]]] = []
    if when_raw is not None:
        wkey = f"{key}.when"
        if not isinstance(when_raw, Mapping) or not when_raw:
            raise ctx.error(wkey, f"expected a mapping such as {{augmentation: random}}, got {when_raw!r}")
        for cond_key, allowed in when_raw.items():
            ckey = f"{wkey}.{cond_key}"
            allowed_t = tuple(allowed) if isinstance(allowed, list) else (allowed,)
            if not allowed_t:
                raise ctx.error(ckey, "empty list of values; give the values for which the parameter is used")
            if cond_key in fixed:
                possible: tuple[Any, ...] | None = (fixed[cond_key],)
            elif cond_key in earlier:
                possible = earlier[cond_key].possible_values()
                if possible is None:
                    raise ctx.error(
                        ckey,
                        f"{cond_key} is a continuous range; conditions can only name choice/value "
                        "parameters or fixed keys",
                    )
            elif cond_key == name:
                raise ctx.error(ckey, "a parameter cannot depend on itself")
            else:
                where = "a parameter listed later" if cond_key in FIELD_TYPES else "not a fixed key or parameter"
                raise ctx.error(
                    ckey,
                    f"{cond_key!r} is {where}{_suggest(str(cond_key), list(fixed) + list(earlier))}; "
                    "a condition may only name fixed keys or parameters listed above it",
                )
            for option in allowed_t:
                _check_named_value(ctx, ckey, cond_key, option)
            if not any(_matches(option, tuple(possible)) for option in allowed_t):
                raise ctx.error(
                    ckey,
                    f"{list(allowed_t)} can never occur ({cond_key} takes {list(possible)}), so {name} would "
                    "never be sampled; fix the condition or remove the parameter",
                )
            when.append((cond_key, allowed_t))
    return Param(name=name, kind=kind, when=tuple(when), **kwargs)


def _preset_overrides(name: str) -> dict[str, Any]:
    """The fields a Table 1 preset sets (its differences from TrainConfig()) + the objective keys."""
    preset = PRESETS[name]
    default = TrainConfig()
    out = {k: getattr(preset, k) for k in ("augmentation", "locations", "regularization")}
    for f in dataclasses.fields(TrainConfig):
        if getattr(preset, f.name) != getattr(default, f.name):
            out[f.name] = getattr(preset, f.name)
    return _plain(out)


def _parse_grid(ctx: _Ctx, data: Mapping[str, Any], fixed: Mapping[str, Any], params: Mapping[str, Param]) -> list[GridPoint]:
    points: list[GridPoint] = []
    presets = data.get("presets")
    if presets is not None:
        if presets == "all":
            presets = list(PRESETS)
        if not isinstance(presets, list) or not presets:
            raise ctx.error("presets", f"expected a non-empty list of preset names or 'all', got {presets!r}")
        for name in presets:
            if name not in PRESETS:
                raise ctx.error(
                    "presets",
                    f"unknown preset {name!r}{_suggest(str(name), PRESETS)}; choose from {list(PRESETS)}",
                )
            overrides = _preset_overrides(name)
            clash = sorted(set(overrides) & set(fixed))
            if clash:
                raise ctx.error(
                    f"fixed.{clash[0]}",
                    f"preset {name!r} sets {clash[0]} itself; remove it from fixed (a grid of presets "
                    "only fixes what the presets leave open)",
                )
            points.append(GridPoint(label=name, overrides=overrides))
    configs = data.get("configs")
    if configs is not None:
        if not isinstance(configs, list) or not configs:
            raise ctx.error("configs", f"expected a non-empty list of override mappings, got {configs!r}")
        for i, entry in enumerate(configs):
            ckey = f"configs[{i}]"
            if not isinstance(entry, Mapping):
                raise ctx.error(ckey, f"expected a mapping of TrainConfig keys, got {entry!r}")
            entry = dict(entry)
            label = entry.pop("name", None) or f"config{i}"
            for key, value in entry.items():
                _config_key(ctx, ckey, key)
                _check_named_value(ctx, f"{ckey}.{key}", key, value)
                if key in fixed:
                    raise ctx.error(f"{ckey}.{key}", "is also under fixed; keep it in one place")
            entry = {key: _numeric_if_text(key, value) for key, value in entry.items()}
            points.append(GridPoint(label=str(label), overrides=_plain(entry)))
    for name, param in params.items():
        if param.possible_values() is None:
            raise ctx.error(
                f"params.{name}",
                f"{param.kind} ranges cannot be enumerated by searcher.kind: grid; use choice/value or "
                "searcher.kind: optuna-tpe",
            )
    if params:
        combos = _discrete_combinations(params, fixed)
        base_points = points or [GridPoint(label="", overrides={})]
        points = []
        for point in base_points:
            for combo in combos:
                clash = sorted(set(combo) & set(point.overrides))
                if clash:
                    raise ctx.error(f"params.{clash[0]}", f"{point.label!r} sets {clash[0]} too; keep it in one place")
                label = ",".join(f"{k}={v}" for k, v in combo.items() if len(params[k].possible_values() or ()) > 1)
                label = "/".join(x for x in (point.label, label) if x) or "point"
                points.append(GridPoint(label=label, overrides={**point.overrides, **_plain(combo)}))
    if not points:
        raise ctx.error(
            "searcher.kind",
            "grid needs something to run: a `presets:` list, a `configs:` list, or choice params",
        )
    labels = [p.label for p in points]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ctx.error("configs", f"duplicate point names {dupes}; give each config a distinct `name`")
    return points


def _discrete_combinations(params: Mapping[str, Param], fixed: Mapping[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """Every assignment of the discrete params (inactive params absent), honouring `when`.

    Continuous params are skipped here. Returns [] when more than `limit`.
    """
    combos: list[dict[str, Any]] = [{}]
    for param in params.values():
        values = param.possible_values()
        if values is None:
            continue
        nxt: list[dict[str, Any]] = []
        for combo in combos:
            known = {**fixed, **combo}
            if param.active(known):
                nxt.extend({**combo, param.name: v} for v in values)
            else:
                nxt.append(combo)
        combos = nxt
        if limit is not None and len(combos) > limit:
            return []
    return combos


def _check_combinations(ctx: _Ctx, base: TrainConfig, params: Mapping[str, Param], fixed: Mapping[str, Any]) -> None:
    """Every bound and every discrete combination must make a valid TrainConfig."""
    combos = _discrete_combinations(params, fixed, limit=MAX_COMBINATIONS_CHECKED) or [{}]
    continuous = [p for p in params.values() if p.possible_values() is None]
    for combo in combos:
        known = {**fixed, **combo}
        try:
            cfg = apply_overrides(base, combo)
        except ConfigError as exc:
            desc = ", ".join(f"{k}={v!r}" for k, v in combo.items())
            first = next(iter(combo), "params")
            raise ctx.error(
                f"params.{first}",
                f"the combination {desc} is not a valid config: {exc}. Remove the value or add a `when` "
                "condition that excludes the combination",
            ) from None
        for param in continuous:
            if not param.active(known):
                continue
            for bound in (param.low, param.high):
                try:
                    apply_overrides(cfg, {param.name: bound})
                except ConfigError as exc:
                    raise ctx.error(
                        f"params.{param.name}.{param.kind}", f"bound {bound!r} is not valid: {exc}"
                    ) from None


def parse_space(text: str, path: Path | str = "<space>") -> Space:
    """Parse and validate the YAML `text` of a space (`path` is used in messages)."""
    path = Path(path)
    ctx = _Ctx(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpaceError(f"{path}: {where}YAML syntax error: {problem}; fix the YAML at that place") from None
    if not isinstance(data, Mapping):
        raise SpaceError(f"{path}: expected a YAML mapping with keys such as name, metric, params; got {type(data).__name__}")
    _check_keys(ctx, "", data, TOP_LEVEL_KEYS)

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ctx.error("name", f"{name!r} must be a non-empty name of letters, digits, '_', '-', '.'")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise ctx.error("description", "expected text")

    # -- metric / mode
    metric_raw = data.get("metric", "val_macro_f1")
    metrics = tuple(metric_raw) if isinstance(metric_raw, list) else (metric_raw,)
    if not metrics:
        raise ctx.error("metric", f"give one of {list(SELECTABLE_METRICS)} or a list of them")
    for m in metrics:
        if m not in SELECTABLE_METRICS:
            raise ctx.error(
                "metric",
                f"{m!r} is not reported during the search{_suggest(str(m), SELECTABLE_METRICS)}; choose from "
                f"{list(SELECTABLE_METRICS)} (eval metrics are only computed in the final stage)",
            )
    if len(set(metrics)) != len(metrics):
        raise ctx.error("metric", f"duplicate metrics in {list(metrics)}")
    mode = data.get("mode", "max")
    if mode not in ("min", "max"):
        raise ctx.error("mode", f"{mode!r}: use max or min")

    # -- searcher / scheduler / resources
    searcher_raw = _mapping(ctx, "searcher", data.get("searcher"), "{kind: optuna-tpe, seed: 0}")
    _check_keys(ctx, "searcher", searcher_raw, SEARCHER_KEYS)
    kind = searcher_raw.get("kind", "optuna-tpe")
    if kind not in SEARCHER_KINDS:
        raise ctx.error("searcher.kind", f"{kind!r}{_suggest(str(kind), SEARCHER_KINDS)}; choose from {list(SEARCHER_KINDS)}")
    n_startup = searcher_raw.get("n_startup_trials")
    searcher = SearcherSpec(
        kind=kind,
        seed=_int(ctx, "searcher.seed", searcher_raw.get("seed", 0), 0),
        n_startup_trials=None if n_startup is None else _int(ctx, "searcher.n_startup_trials", n_startup, 1),
    )
    sched_raw = _mapping(ctx, "scheduler", data.get("scheduler"), "{kind: asha, max_epochs: 30, grace_period: 5}")
    _check_keys(ctx, "scheduler", sched_raw, SCHEDULER_KEYS)
    skind = sched_raw.get("kind", "asha")
    if skind not in SCHEDULER_KINDS:
        raise ctx.error("scheduler.kind", f"{skind!r}; choose from {list(SCHEDULER_KINDS)}")
    if "max_epochs" not in sched_raw:
        raise ctx.error("scheduler.max_epochs", "missing; give the epochs of a full search trial, e.g. max_epochs: 30")
    max_epochs = _int(ctx, "scheduler.max_epochs", sched_raw["max_epochs"], 1)
    if skind == "fifo":
        for k in ("grace_period", "reduction_factor"):
            if k in sched_raw:
                raise ctx.error(f"scheduler.{k}", "only applies to kind: asha; remove it or use kind: asha")
    grace = _int(ctx, "scheduler.grace_period", sched_raw.get("grace_period", 1), 1)
    if grace > max_epochs:
        raise ctx.error("scheduler.grace_period", f"{grace} > max_epochs {max_epochs}; use grace_period <= max_epochs")
    rf = _number(ctx, "scheduler.reduction_factor", sched_raw.get("reduction_factor", 3))
    if rf <= 1:
        raise ctx.error("scheduler.reduction_factor", f"{rf} must be > 1 (ASHA keeps 1/reduction_factor per rung)")
    scheduler = SchedulerSpec(kind=skind, max_epochs=max_epochs, grace_period=grace, reduction_factor=float(rf))

    res_raw = _mapping(ctx, "resources", data.get("resources"), "{cpu: 1, gpu: auto}")
    _check_keys(ctx, "resources", res_raw, RESOURCE_KEYS)
    cpu = _number(ctx, "resources.cpu", res_raw.get("cpu", 1))
    if cpu <= 0:
        raise ctx.error("resources.cpu", f"{cpu} must be > 0")
    gpu = res_raw.get("gpu", "auto")
    if gpu != "auto":
        gpu = _number(ctx, "resources.gpu", gpu)
        if gpu < 0:
            raise ctx.error("resources.gpu", f"{gpu} must be >= 0 (or auto)")
        if gpu > 1 and not float(gpu).is_integer():
            raise ctx.error("resources.gpu", f"{gpu}: fractions are only allowed below 1 GPU")
    resources = ResourceSpec(cpu=float(cpu), gpu=gpu)
    max_concurrent = data.get("max_concurrent")
    if max_concurrent is not None:
        max_concurrent = _int(ctx, "max_concurrent", max_concurrent, 1)
    max_failures = _int(ctx, "max_failures", data.get("max_failures", 0), 0)

    # -- fixed
    fixed_raw = _mapping(ctx, "fixed", data.get("fixed"), "{regularization: l2}")
    fixed: dict[str, Any] = {}
    for key, value in fixed_raw.items():
        _config_key(ctx, "fixed", key)
        _check_named_value(ctx, f"fixed.{key}", key, value)
        fixed[key] = _plain(_numeric_if_text(key, value))
    if "epochs" in fixed and fixed["epochs"] != max_epochs:
        raise ctx.error(
            "fixed.epochs",
            f"{fixed['epochs']} differs from scheduler.max_epochs {max_epochs}; a search trial runs "
            "max_epochs epochs, so remove fixed.epochs or make them equal",
        )
    base = _apply(ctx, "fixed", TrainConfig(), {**fixed, "epochs": max_epochs})
    if "val_psds" in metrics and not base.val_psds:
        raise ctx.error(
            "metric",
            "val_psds is only reported when validation PSDS is computed; add `val_psds: true` under fixed "
            "(it costs seconds per epoch) or select on val_macro_f1",
        )

    # -- params
    params_raw = _mapping(ctx, "params", data.get("params"), "{epsilon: {loguniform: [0.01, 1.0]}}")
    params: dict[str, Param] = {}
    for pname, spec in params_raw.items():
        _config_key(ctx, "params", pname)
        params[pname] = _parse_param(ctx, pname, spec, params, fixed)
    if any(p == "val_psds" for p in params):
        raise ctx.error("params.val_psds", "whether PSDS is computed is not a hyperparameter; set it under fixed")
    _check_combinations(ctx, base, params, fixed)

    # -- grid / samples
    grid: list[GridPoint] = []
    if kind == "grid":
        if "num_samples" in data:
            raise ctx.error("num_samples", "a grid runs each of its points once; remove num_samples")
        grid = _parse_grid(ctx, data, fixed, params)
        for point in grid:
            _apply(ctx, f"configs/presets point {point.label!r}", base, point.overrides)
        num_samples = len(grid)
    else:
        for key in ("presets", "configs"):
            if key in data:
                raise ctx.error(key, "only used with searcher.kind: grid; remove it or switch the searcher to grid")
        if "num_samples" not in data:
            raise ctx.error("num_samples", "missing; give the number of trials to sample, e.g. num_samples: 32")
        num_samples = _int(ctx, "num_samples", data["num_samples"], 1)
        if not params:
            raise ctx.error("params", "nothing to search; add params or use searcher.kind: grid")

    # -- final stage
    final: FinalSpec | None = None
    final_raw = data.get("final")
    if final_raw is not None:
        final_raw = _mapping(ctx, "final", final_raw, "{top_k: 3, seeds: [1, 2, 3], epochs: 30}")
        _check_keys(ctx, "final", final_raw, FINAL_KEYS)
        top_k = _int(ctx, "final.top_k", final_raw.get("top_k", 3), 1)
        if top_k > num_samples:
            raise ctx.error(
                "final.top_k",
                f"{top_k} is larger than num_samples={num_samples} (the number of search trials); lower top_k",
            )
        seeds_raw = final_raw.get("seeds", [1, 2, 3])
        if not isinstance(seeds_raw, list) or not seeds_raw:
            raise ctx.error("final.seeds", f"expected a non-empty list of integer seeds, got {seeds_raw!r}")
        seeds = tuple(_int(ctx, "final.seeds", s, 0) for s in seeds_raw)
        if len(set(seeds)) != len(seeds):
            raise ctx.error("final.seeds", f"duplicate seeds in {list(seeds)}")
        epochs = _int(ctx, "final.epochs", final_raw.get("epochs", max_epochs), 1)
        final = FinalSpec(top_k=top_k, seeds=seeds, epochs=epochs)

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


__all__ = [
    "SpaceError",
    "Space",
    "Param",
    "GridPoint",
    "SearcherSpec",
    "SchedulerSpec",
    "ResourceSpec",
    "FinalSpec",
    "SELECTABLE_METRICS",
    "DATA_KEYS",
    "config_id",
    "load_space",
    "parse_space",
]
