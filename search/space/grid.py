"""Grid spaces (`searcher.kind: grid`) and the discrete combinations of any space.

A grid runs each of its points once: the Table 1 presets named in
`presets:`, the override mappings in `configs:`, each crossed with every
combination of the `choice` / `value` params. For every space, each
combination of its discrete params (and both bounds of each range) must
make a valid `TrainConfig`; that is checked here before anything starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sed.config import ConfigError, TrainConfig, apply_overrides
from sed.presets import ALL_PRESETS, PRESETS

from .checks import Context, apply, check_named_value, config_key, integer, suggest, yaml_number
from .model import GridPoint, Param, plain

#: Combinations of discrete values checked exhaustively up to this many.
MAX_COMBINATIONS_CHECKED = 20000


def preset_overrides(name: str) -> dict[str, Any]:
    """The fields a preset sets (its differences from TrainConfig()) + the objective keys."""
    preset = ALL_PRESETS[name]
    default = TrainConfig()
    out = {k: getattr(preset, k) for k in ("augmentation", "locations", "regularization")}
    for f in dataclasses.fields(TrainConfig):
        if getattr(preset, f.name) != getattr(default, f.name):
            out[f.name] = getattr(preset, f.name)
    return plain(out)


def parse_grid(
    ctx: Context, data: Mapping[str, Any], fixed: Mapping[str, Any], params: Mapping[str, Param]
) -> list[GridPoint]:
    """Every point of a grid space: presets, then configs, each crossed with the discrete params."""
    points = _preset_points(ctx, data.get("presets"), fixed) + _config_points(ctx, data.get("configs"), fixed)
    for name, param in params.items():
        if param.possible_values() is None:
            raise ctx.error(
                f"params.{name}",
                f"{param.kind} ranges cannot be enumerated by searcher.kind: grid; use choice/value or "
                "searcher.kind: optuna-tpe",
            )
    if params:
        points = _crossed(ctx, points, params, fixed)
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


def _preset_points(ctx: Context, presets: Any, fixed: Mapping[str, Any]) -> list[GridPoint]:
    """`presets:` (names of sed.presets.ALL_PRESETS, or `all` = Table 1's nine) -> one point per preset."""
    if presets is None:
        return []
    if presets == "all":
        presets = list(PRESETS)
    if not isinstance(presets, list) or not presets:
        raise ctx.error("presets", f"expected a non-empty list of preset names or 'all', got {presets!r}")
    points = []
    for name in presets:
        if name not in ALL_PRESETS:
            raise ctx.error(
                "presets",
                f"unknown preset {name!r}{suggest(str(name), ALL_PRESETS)}; choose from {list(ALL_PRESETS)}",
            )
        overrides = preset_overrides(name)
        clash = sorted(set(overrides) & set(fixed))
        if clash:
            raise ctx.error(
                f"fixed.{clash[0]}",
                f"preset {name!r} sets {clash[0]} itself; remove it from fixed (a grid of presets "
                "only fixes what the presets leave open)",
            )
        points.append(GridPoint(label=name, overrides=overrides))
    return points


def _config_points(ctx: Context, configs: Any, fixed: Mapping[str, Any]) -> list[GridPoint]:
    """`configs:` (override mappings, each with an optional `name`) -> one point each."""
    if configs is None:
        return []
    if not isinstance(configs, list) or not configs:
        raise ctx.error("configs", f"expected a non-empty list of override mappings, got {configs!r}")
    points = []
    for i, entry in enumerate(configs):
        ckey = f"configs[{i}]"
        if not isinstance(entry, Mapping):
            raise ctx.error(ckey, f"expected a mapping of TrainConfig keys, got {entry!r}")
        entry = dict(entry)
        label = entry.pop("name", None) or f"config{i}"
        for key, value in entry.items():
            config_key(ctx, ckey, key)
            check_named_value(ctx, f"{ckey}.{key}", key, value)
            if key in fixed:
                raise ctx.error(f"{ckey}.{key}", "is also under fixed; keep it in one place")
        entry = {key: yaml_number(key, value) for key, value in entry.items()}
        points.append(GridPoint(label=str(label), overrides=plain(entry)))
    return points


def _crossed(
    ctx: Context, points: list[GridPoint], params: Mapping[str, Param], fixed: Mapping[str, Any]
) -> list[GridPoint]:
    """Each point (or one empty point) x each combination of the params, labelled 'point/k=v,...'."""
    combos = discrete_combinations(params, fixed)
    crossed = []
    for point in points or [GridPoint(label="", overrides={})]:
        for combo in combos:
            clash = sorted(set(combo) & set(point.overrides))
            if clash:
                raise ctx.error(f"params.{clash[0]}", f"{point.label!r} sets {clash[0]} too; keep it in one place")
            label = ",".join(f"{k}={v}" for k, v in combo.items() if len(params[k].possible_values() or ()) > 1)
            label = "/".join(x for x in (point.label, label) if x) or "point"
            crossed.append(GridPoint(label=label, overrides={**point.overrides, **plain(combo)}))
    return crossed


def discrete_combinations(
    params: Mapping[str, Param], fixed: Mapping[str, Any], limit: int | None = None
) -> list[dict[str, Any]]:
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


def check_combinations(ctx: Context, base: TrainConfig, params: Mapping[str, Param], fixed: Mapping[str, Any]) -> None:
    """Every bound and every discrete combination must make a valid TrainConfig."""
    combos = discrete_combinations(params, fixed, limit=MAX_COMBINATIONS_CHECKED) or [{}]
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


def grid_or_samples(
    ctx: Context,
    data: Mapping[str, Any],
    kind: str,
    fixed: Mapping[str, Any],
    params: Mapping[str, Param],
    base: TrainConfig,
) -> tuple[list[GridPoint], int]:
    """(grid points, num_samples): a grid's points and their count, or the sampled space's num_samples."""
    if kind == "grid":
        if "num_samples" in data:
            raise ctx.error("num_samples", "a grid runs each of its points once; remove num_samples")
        grid = parse_grid(ctx, data, fixed, params)
        for point in grid:
            apply(ctx, f"configs/presets point {point.label!r}", base, point.overrides)
        return grid, len(grid)
    for key in ("presets", "configs"):
        if key in data:
            raise ctx.error(key, "only used with searcher.kind: grid; remove it or switch the searcher to grid")
    if "num_samples" not in data:
        raise ctx.error("num_samples", "missing; give the number of trials to sample, e.g. num_samples: 32")
    num_samples = integer(ctx, "num_samples", data["num_samples"], 1)
    if not params:
        raise ctx.error("params", "nothing to search; add params or use searcher.kind: grid")
    return [], num_samples
