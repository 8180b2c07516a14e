"""The checks every part of a space file goes through, and the wording of their refusals.

A refusal is a `SpaceError` '<file>: <key>: <problem>; <fix>' (`Context`).
Config values are read with `sed.config`'s own rules, not a copy of them:
`coerce_value` for numbers that YAML 1.1 left as text (`1e-5`), and
`parse_locations` for location sets.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sed.config import (
    AUGMENTATIONS,
    FIELD_TYPES,
    LOCATION_ALIASES,
    LOCATIONS,
    REGULARIZATIONS,
    ConfigError,
    TrainConfig,
    apply_overrides,
    canonical_key,
    coerce_value,
    parse_locations,
)

from .model import SpaceError


class Context:
    """Formats error messages: '<file>: <key>: <problem>; <fix>'."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, message: str) -> SpaceError:
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        return SpaceError(where + message)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def suggest(word: str, options: Iterable[str]) -> str:
    """' (did you mean ...?)' with the closest option, and a second one only if about as close."""
    close = difflib.get_close_matches(word, list(options), n=2, cutoff=0.6)
    if len(close) == 2:
        ratios = [difflib.SequenceMatcher(None, word, c).ratio() for c in close]
        if ratios[1] < ratios[0] - 0.1:  # 'adverserial': 'adversarial', not 'filter_adversarial'
            close = close[:1]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def check_keys(ctx: Context, where: str, mapping: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in mapping:
        if not isinstance(key, str) or key not in allowed:
            raise ctx.error(
                f"{where}.{key}" if where else str(key),
                f"unknown key{suggest(str(key), allowed)}; allowed keys: {', '.join(allowed)}",
            )


def mapping(ctx: Context, key: str, value: Any, example: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ctx.error(key, f"expected a mapping, got {type(value).__name__} {value!r}; write e.g. {example}")
    return dict(value)


def integer(ctx: Context, key: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ctx.error(key, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ctx.error(key, f"{value} must be >= {minimum}")
    return value


def boolean(ctx: Context, key: str, value: Any, hint: str = "") -> bool:
    """A true/false setting of the space (`hint`: what true does, added to the message)."""
    if not isinstance(value, bool):
        raise ctx.error(key, f"expected true or false, got {value!r}{hint}")
    return value


def number(ctx: Context, key: str, value: Any) -> float:
    """A finite number of the space's own settings (bounds, resources, reduction factor)."""
    if isinstance(value, str):  # YAML reads 1e-7 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if not is_number(value) or not math.isfinite(value):
        raise ctx.error(key, f"expected a finite number, got {value!r}")
    return value


def yaml_number(name: str, value: Any) -> Any:
    """A config value as the file wrote it, except text that is a number of field `name`.

    YAML 1.1 reads `1e-5` (no dot) as text: such text becomes the number
    `sed.config.coerce_value` makes of it for that field. Everything else is
    kept as written (choice lists stay Optuna scalars such as '16,32,64', and
    the leaderboard columns show the file's values); `apply_overrides`
    coerces and checks it when a trial's config is built.
    """
    if not isinstance(value, str):
        return value
    try:
        coerced = coerce_value(name, value)
    except ConfigError:
        return value
    return coerced if is_number(coerced) else value


def config_key(ctx: Context, where: str, key: Any) -> str:
    """`key` (its new name if renamed: sed.config.canonical_key), refused unless a TrainConfig field."""
    if isinstance(key, str):
        key = canonical_key(key)
    if not isinstance(key, str) or key not in FIELD_TYPES:
        raise ctx.error(
            f"{where}.{key}",
            f"not a TrainConfig field{suggest(str(key), FIELD_TYPES)}; use one of the field names of "
            "sed.config.TrainConfig",
        )
    return key


def check_named_value(ctx: Context, key: str, name: str, value: Any) -> None:
    """Explicit checks of the objective's enumerations (clearer than a later ConfigError)."""
    table = {"augmentation": AUGMENTATIONS, "regularization": REGULARIZATIONS}
    if name in table and value not in table[name]:
        raise ctx.error(
            key, f"unknown {name} {value!r}{suggest(str(value), table[name])}; choose from {list(table[name])}"
        )
    if name == "locations":
        if not isinstance(value, str):
            raise ctx.error(key, f"locations must be a string such as 'latent' or 'input+cnn', got {value!r}")
        try:
            parse_locations(value)
        except ConfigError as exc:
            # the key is named already: drop sed's "locations='...': " before the problem
            problem, sep, fix = str(exc).removeprefix(f"locations={value!r}: ").partition("; ")
            options = list(LOCATIONS) + sorted(LOCATION_ALIASES)
            unknown = [word for word in re.findall(r"\w+", value) if word not in options]
            hint = suggest(unknown[0], options) if unknown else ""
            raise ctx.error(key, problem + hint + sep + fix) from None


def apply(ctx: Context, key: str, base: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    try:
        return apply_overrides(base, overrides)
    except ConfigError as exc:
        raise ctx.error(key, f"{exc}") from None
    except (TypeError, ValueError) as exc:
        raise ctx.error(key, f"invalid value: {exc}") from None


def parse_storage(ctx: Context, value: Any, searcher_kind: str) -> str | None:
    """`storage:` -- where the Optuna study lives (search.study_storage): a database URL or a journal file."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(
            "storage",
            f"{value!r}: give a database URL (sqlite:///PATH, postgresql://...) or the "
            "path of an Optuna journal file (e.g. /shared/studies.journal)",
        )
    if searcher_kind == "grid":
        raise ctx.error("storage", "a grid space has no Optuna study; remove storage: or use an optuna searcher")
    return value.strip()
