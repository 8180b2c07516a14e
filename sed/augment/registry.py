"""The one table of consistency augmentations: each entry owns its name, fields, locations and builder.

An `Augmentation` declares

- `name`: the value of `TrainConfig.augmentation`;
- `fields`: the `TrainConfig` fields it reads, each a `FieldRule` with its
  valid range (the rule of a field shared by several augmentations, e.g.
  `epsilon`, is one object listed by each); `requires` adds rules that hold
  only when this augmentation is chosen (VAT needs xi > 0), `check` a
  cross-field rule (a band layout must fit the mel axis);
- `locations`: the injection points it is defined at (`input`, `cnn`, `rnn`);
- `build(probe, config) -> Perturbation`: the hooks of one step (None for
  `none`, which has no perturbation), and `needs_input_space` when it goes
  back through the features' dB floor and scaler;
- `presets`: its named configs beyond the paper's Table 1 (whose nine rows
  stay in `sed.presets.PRESETS`, beside the paper's numbers).

`sed.config` validates a config from it, `sed.training.objectives` builds the
perturbation from it, and `search.space` checks that a parameter's
`when: {augmentation: ...}` names augmentations that read that parameter.
Adding an augmentation is one entry (`register`), in `paper.py` or
`realistic.py`; nothing else branches on augmentation names.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

from sed.errors import ConfigError
from sed.nn.model import CRNN, LOCATIONS

if TYPE_CHECKING:  # pragma: no cover
    from sed.augment.perturb import LogMelSpace

Hook = Callable[[Tensor], Tensor]


class AugmentationConfig(Protocol):
    """The part of a `sed.config.TrainConfig` the augmentations read.

    The registry sits below the config (the config validates itself and builds its presets
    from the registry), so it names the fields it reads instead of importing the config.
    """

    @property
    def augmentation(self) -> str: ...
    @property
    def locations(self) -> str: ...
    @property
    def location_set(self) -> tuple[str, ...]: ...
    @property
    def noise_scale(self) -> float: ...
    @property
    def noise_snr(self) -> float: ...
    @property
    def epsilon(self) -> float: ...
    @property
    def xi(self) -> float: ...
    @property
    def vat_iters(self) -> int: ...
    @property
    def mixup_alpha(self) -> float: ...
    @property
    def filter_bands(self) -> int: ...
    @property
    def filter_min_width(self) -> int: ...
    @property
    def filter_db(self) -> float: ...
    @property
    def filter_mode(self) -> str: ...


@dataclass(frozen=True)
class FieldRule:
    """A TrainConfig field an augmentation reads, and the values it accepts."""

    name: str
    accepts: Callable[[Any], bool]
    #: Completes "<name>=<value> must be ..." in the refusal.
    requirement: str
    doc: str = ""

    def check(self, config: Any, context: str = "") -> None:
        value = getattr(config, self.name)
        if not self.accepts(value):
            raise ConfigError(f"{self.name}={value!r} must be {self.requirement}{context}")


def finite_at_least(name: str, low: float, doc: str = "") -> FieldRule:
    return FieldRule(
        name,
        lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v >= low,
        f"a finite number >= {low:g}",
        doc,
    )


def finite_above(name: str, low: float, doc: str = "") -> FieldRule:
    return FieldRule(name, lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > low, f"> {low:g}", doc)


def int_at_least(name: str, low: int, doc: str = "") -> FieldRule:
    return FieldRule(name, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low, f">= {low}", doc)


def one_of(name: str, options: tuple[str, ...], doc: str = "") -> FieldRule:
    return FieldRule(name, lambda v: v in options, f"one of {list(options)}", doc)


@dataclass
class Probe:
    """What a builder may use for one step.

    `model` is the network whose sensitivity adversarial/VAT search: the
    student (`none`/`l2`: from `start`, with the clean pass's `activations`)
    or the teacher (`mt`: from the input, activations unknown). Builders run
    inside that model's `tied_dropout` scope.
    """

    model: CRNN
    start: str
    start_h: Tensor
    target_strong: Tensor
    target_weak: Tensor
    activations: Mapping[str, Tensor] | None
    locations: tuple[str, ...]
    rng: _random.Random
    input_space: LogMelSpace | None = None

    @property
    def batch_size(self) -> int:
        return int(self.start_h.shape[0])


@dataclass
class Perturbation:
    """One step's perturbation: hooks at injection points, and what the target becomes.

    `start`: where the perturbed pass must start (None: the probe's start);
    `mix`: the map applied to the clean predictions that serve as target
    (mixup's Mixup(f(x), f(x')); None: identity).
    """

    hooks: dict[str, Hook]
    start: str | None = None
    mix: Callable[[Tensor], Tensor] | None = None

    def mixed(self, prediction: Tensor) -> Tensor:
        return prediction if self.mix is None else self.mix(prediction)


Builder = Callable[[Probe, AugmentationConfig], Perturbation]


@dataclass(frozen=True)
class Augmentation:
    name: str
    summary: str
    locations: tuple[str, ...]
    fields: tuple[FieldRule, ...] = ()
    build: Builder | None = None
    requires: tuple[FieldRule, ...] = ()
    check: Callable[[AugmentationConfig], None] | None = None
    needs_input_space: bool = False
    #: Where its definition comes from (docs and tables).
    source: str = ""
    #: Named configs of this augmentation beyond Table 1: (preset name, overrides of
    #: TrainConfig()); `sed.presets.REALISTIC_PRESETS` is built from them.
    presets: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    @property
    def perturbs(self) -> bool:
        return self.build is not None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.fields)

    def validate(self, config: AugmentationConfig) -> None:
        """The rules that hold only when this augmentation is chosen."""
        chosen = config.location_set
        if any(loc not in self.locations for loc in chosen):
            latent = [a.name for a in REGISTRY.values() if a.perturbs and set(a.locations) >= {"cnn", "rnn"}]
            raise ConfigError(
                f"augmentation={self.name!r} is defined at {list(self.locations)} only "
                f"(locations={config.locations!r}); use locations={'+'.join(self.locations)}, or one of "
                f"{latent} for the CNN/RNN outputs"
            )
        for rule in self.requires:
            rule.check(config, f" for augmentation={self.name}")
        if self.check is not None:
            self.check(config)


REGISTRY: dict[str, Augmentation] = {}


def register(augmentation: Augmentation) -> Augmentation:
    if augmentation.name in REGISTRY:
        raise ValueError(f"augmentation {augmentation.name!r} is registered twice")
    unknown = [loc for loc in augmentation.locations if loc not in LOCATIONS]
    if unknown or not augmentation.locations:
        raise ValueError(f"augmentation {augmentation.name!r}: locations {unknown} are not in {LOCATIONS}")
    REGISTRY[augmentation.name] = augmentation
    return augmentation


def get(name: str) -> Augmentation:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"augmentation={name!r} is unknown; choose one of {list(REGISTRY)}") from None


def field_rules() -> dict[str, FieldRule]:
    """Every field any augmentation reads, once (a shared field has one rule)."""
    rules: dict[str, FieldRule] = {}
    for augmentation in REGISTRY.values():
        for rule in augmentation.fields:
            if rules.setdefault(rule.name, rule) is not rule:
                raise ValueError(f"field {rule.name!r} has two different rules; share one FieldRule")
    return rules


def readers(field_name: str) -> tuple[str, ...]:
    """The augmentations that read `field_name` (empty: no augmentation owns it)."""
    return tuple(a.name for a in REGISTRY.values() if field_name in a.field_names)


__all__ = [
    "Augmentation",
    "AugmentationConfig",
    "Builder",
    "FieldRule",
    "Hook",
    "Perturbation",
    "Probe",
    "REGISTRY",
    "field_rules",
    "finite_above",
    "finite_at_least",
    "get",
    "int_at_least",
    "one_of",
    "readers",
    "register",
]
