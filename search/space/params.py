"""One entry of a space's `params:`: its distribution and its `when` condition -> `Param`.

A parameter is sampled only when its condition holds, so a condition may
only name fixed keys or choice/value parameters listed above it, and must be
able to hold at all. Distributions: `choice` (scalars), `value` (a constant
that is still a column), `uniform` / `loguniform` (float fields), `int`
(optionally `log: true`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sed.augment import readers as augmentation_readers
from sed.config import AUGMENTATIONS, FIELD_TYPES

from .checks import Context, boolean, check_keys, check_named_value, is_scalar, number, suggest, yaml_number
from .model import DISTRIBUTIONS, Param, matches

PARAM_KEYS = DISTRIBUTIONS + ("when", "log")
#: Keys the search itself controls; a space may not sample them.
RESERVED_PARAMS = ("epochs",)


def parse_param(ctx: Context, name: str, spec: Any, earlier: Mapping[str, Param], fixed: Mapping[str, Any]) -> Param:
    """The `Param` of `params.<name>`; `earlier`: the params above it, `fixed`: the fixed values."""
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
    check_keys(ctx, key, spec, PARAM_KEYS)
    kinds = [k for k in DISTRIBUTIONS if k in spec]
    if len(kinds) != 1:
        raise ctx.error(
            key,
            f"give exactly one distribution among {list(DISTRIBUTIONS)}, got {kinds or 'none'}",
        )
    kind = kinds[0]
    if "log" in spec and kind != "int":
        raise ctx.error(f"{key}.log", "log applies to int only (use loguniform for floats); remove it")
    kwargs = _distribution(ctx, name, kind, spec)
    when = _condition(ctx, name, spec.get("when"), earlier, fixed)
    return Param(name=name, kind=kind, when=when, **kwargs)


def _distribution(ctx: Context, name: str, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The `Param` fields of distribution `kind` (choices, value, or low/high/log)."""
    key = f"params.{name}"
    dkey = f"{key}.{kind}"
    raw = spec[kind]
    if kind == "choice":
        if not isinstance(raw, list):
            raise ctx.error(dkey, f"expected a list of values, e.g. choice: [a, b]; got {raw!r}")
        if not raw:
            raise ctx.error(dkey, "the list of choices is empty; give at least one value")
        for item in raw:
            if not is_scalar(item):
                raise ctx.error(
                    dkey,
                    f"choice {item!r} is not a scalar; Optuna choices are strings/numbers/booleans "
                    "(write lists as a comma string, e.g. '16,32,64', or move the value to fixed)",
                )
            check_named_value(ctx, dkey, name, item)
        raw = [yaml_number(name, v) for v in raw]
        if len({json.dumps(v) for v in raw}) != len(raw):
            raise ctx.error(dkey, f"duplicate values in {raw!r}; list each value once")
        return {"choices": tuple(raw)}
    if kind == "value":
        check_named_value(ctx, dkey, name, raw)
        raw = yaml_number(name, raw)
        return {"value": tuple(raw) if isinstance(raw, list) else raw}
    if not isinstance(raw, list) or len(raw) != 2:
        raise ctx.error(dkey, f"expected [low, high], got {raw!r}")
    low = number(ctx, dkey, raw[0])
    high = number(ctx, dkey, raw[1])
    if low > high:
        raise ctx.error(dkey, f"low {low} > high {high}; write [low, high] with low <= high")
    if kind == "loguniform" and low <= 0:
        raise ctx.error(dkey, f"loguniform bounds must be > 0, got low={low}; use a positive low or uniform")
    kwargs: dict[str, Any] = {}
    if kind == "int":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            raise ctx.error(dkey, f"int bounds must be integers, got {raw!r}; write e.g. int: [1, 4]")
        log = boolean(ctx, f"{key}.log", spec.get("log", False))
        if log and low <= 0:
            raise ctx.error(dkey, f"int with log: true needs low >= 1, got {low}")
        kwargs["log"] = log
    elif "float" not in str(FIELD_TYPES[name]):
        raise ctx.error(dkey, f"TrainConfig.{name} is {FIELD_TYPES[name]}, not a float; use choice or int")
    kwargs["low"], kwargs["high"] = low, high
    return kwargs


def _condition(
    ctx: Context, name: str, when_raw: Any, earlier: Mapping[str, Param], fixed: Mapping[str, Any]
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """`when:` of `params.<name>` as (key, allowed values) pairs; each must be able to hold."""
    when: list[tuple[str, tuple[Any, ...]]] = []
    if when_raw is None:
        return ()
    wkey = f"params.{name}.when"
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
                    f"{cond_key} is a continuous range; conditions can only name choice/value parameters or fixed keys",
                )
        elif cond_key == name:
            raise ctx.error(ckey, "a parameter cannot depend on itself")
        else:
            where = "a parameter listed later" if cond_key in FIELD_TYPES else "not a fixed key or parameter"
            raise ctx.error(
                ckey,
                f"{cond_key!r} is {where}{suggest(str(cond_key), list(fixed) + list(earlier))}; "
                "a condition may only name fixed keys or parameters listed above it",
            )
        for option in allowed_t:
            check_named_value(ctx, ckey, cond_key, option)
        if not any(matches(option, tuple(possible)) for option in allowed_t):
            raise ctx.error(
                ckey,
                f"{list(allowed_t)} can never occur ({cond_key} takes {list(possible)}), so {name} would "
                "never be sampled; fix the condition or remove the parameter",
            )
        if cond_key == "augmentation":
            _check_readers(ctx, ckey, name, allowed_t)
        when.append((cond_key, allowed_t))
    return tuple(when)


def _check_readers(ctx: Context, key: str, name: str, allowed: tuple[Any, ...]) -> None:
    """`when: {augmentation: [...]}` on a field an augmentation owns must name augmentations that read it.

    Which augmentation reads which field is the registry's (`sed.augment`).
    """
    owners = augmentation_readers(name)
    if not owners:
        return  # not an augmentation's field (consistency_weight, lr, ...): any condition is fine
    idle = [a for a in allowed if a in AUGMENTATIONS and a not in owners]
    if idle:
        raise ctx.error(
            key,
            f"{name} is not read by augmentation {', '.join(repr(a) for a in idle)} (it is read by "
            f"{list(owners)}); list only augmentations that use it",
        )
