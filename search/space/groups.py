"""`groups:` -- a search per group: each group fixes some keys, its own study tunes the rest.

A space with `groups:` runs one search per group instead of one over the whole
space (the paper's Table 1 protocol: every row's free hyperparameters selected
on the validation score, section 5): each group gets its own Optuna study
(`<name>--<group>`), its own searcher and ASHA scheduler over the same `params:`
and its own trial budget; its trials carry the group's name (`group` column of
search.parquet); the final stage takes the best configuration of each group
(`final.per_group: [group]`, the default with groups) x seeds. Format::

    groups:
      num_samples: 12                 # trials of each searched group (instead of the top-level num_samples)
      presets: [none, baseline, vat-input-l2]   # a group per sed.presets name: the preset's
                                      # augmentation / locations / regularization are fixed; its other
                                      # values too, except where a param of the space applies to the
                                      # group (a preset's strengths are starting values, searched)
      configs:                        # a group per mapping of TrainConfig values, `name` required;
        - {name: vat-cnn, augmentation: vat, locations: cnn}   # every key given is fixed in it
      reference: [baseline]           # groups trained once at their values, not searched
      budgets: {vat-input-l2: 20}     # optional: a group's own trial budget instead of num_samples

A param applies to a group when its `when:` can hold with the group's values
(conditions may name the groups' keys). A group no param applies to (e.g. the
supervised `none`: no strength, no consistency weight) and a `reference` group
run one trial at their values (no study). `--num-samples` sets every searched
group's budget; `Space.num_samples` is the total over the groups.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from sed.config import TrainConfig
from sed.presets import ALL_PRESETS

from .. import trial_spec
from .checks import Context, apply, check_keys, check_named_value, config_key, integer, suggest, yaml_number
from .grid import check_combinations, preset_overrides
from .model import GridPoint, Group, Param, SearcherSpec, Space, matches, plain

GROUP_KEYS = ("num_samples", "presets", "configs", "reference", "budgets")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
#: A preset's values that define its group (never searched, whatever the params say).
DEFINING_KEYS = ("augmentation", "locations", "regularization")


@dataclasses.dataclass(frozen=True)
class RawGroup:
    """A group as written, before the params are known: its name, values and whether a preset gave them."""

    name: str
    values: dict[str, Any]
    preset: bool


def read_groups(ctx: Context, raw: Any, fixed: Mapping[str, Any]) -> tuple[list[RawGroup], dict[str, int], set[str]]:
    """(the groups as written, each group's trial budget if searched, the names of the reference groups)."""
    if not isinstance(raw, Mapping) or not raw:
        raise ctx.error(
            "groups", f"expected a mapping such as {{num_samples: 12, presets: [none, vat-input-l2]}}, got {raw!r}"
        )
    check_keys(ctx, "groups", raw, GROUP_KEYS)
    if "num_samples" not in raw:
        raise ctx.error("groups.num_samples", "missing; give the trials of each searched group, e.g. num_samples: 12")
    num_samples = integer(ctx, "groups.num_samples", raw["num_samples"], 1)
    groups = _preset_groups(ctx, raw.get("presets"), fixed) + _config_groups(ctx, raw.get("configs"), fixed)
    if not groups:
        raise ctx.error("groups", "no group given; add `presets: [...]` and/or `configs: [{name: ..., ...}]`")
    names = [g.name for g in groups]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ctx.error("groups", f"duplicate group names {dupes}; give each group a distinct name")
    reference = raw.get("reference", [])
    if not isinstance(reference, list) or not all(isinstance(n, str) for n in reference):
        raise ctx.error("groups.reference", f"expected a list of group names, got {reference!r}")
    budgets_raw = raw.get("budgets", {})
    if not isinstance(budgets_raw, Mapping):
        raise ctx.error(
            "groups.budgets",
            f"expected a mapping of group name -> trials, e.g. {{vat-input-l2: 20}}, got {budgets_raw!r}",
        )
    for name in [*reference, *budgets_raw]:
        if name not in names:
            where = "groups.reference" if name in reference else "groups.budgets"
            raise ctx.error(where, f"{name!r} is not a group{suggest(str(name), names)}; name one of {names}")
    budgets = {name: integer(ctx, f"groups.budgets.{name}", budgets_raw.get(name, num_samples), 1) for name in names}
    return groups, budgets, set(reference)


def _preset_groups(ctx: Context, presets: Any, fixed: Mapping[str, Any]) -> list[RawGroup]:
    if presets is None:
        return []
    if not isinstance(presets, list) or not presets:
        raise ctx.error("groups.presets", f"expected a non-empty list of preset names, got {presets!r}")
    groups = []
    for name in presets:
        if name not in ALL_PRESETS:
            raise ctx.error(
                "groups.presets",
                f"unknown preset {name!r}{suggest(str(name), ALL_PRESETS)}; choose from {list(ALL_PRESETS)}",
            )
        values = preset_overrides(name)
        clash = sorted(set(values) & set(fixed))
        if clash:
            raise ctx.error(
                f"fixed.{clash[0]}",
                f"preset {name!r} sets {clash[0]} itself; remove it from fixed (fixed may only add what "
                "the group presets leave open)",
            )
        groups.append(RawGroup(str(name), values, preset=True))
    return groups


def _config_groups(ctx: Context, configs: Any, fixed: Mapping[str, Any]) -> list[RawGroup]:
    if configs is None:
        return []
    if not isinstance(configs, list) or not configs:
        raise ctx.error("groups.configs", f"expected a non-empty list of mappings with a name, got {configs!r}")
    groups = []
    for i, entry in enumerate(configs):
        ckey = f"groups.configs[{i}]"
        if not isinstance(entry, Mapping):
            raise ctx.error(ckey, f"expected a mapping such as {{name: vat-cnn, augmentation: vat}}, got {entry!r}")
        entry = dict(entry)
        name = entry.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ctx.error(f"{ckey}.name", "missing; every group needs a name (its study and column value)")
        if not _NAME_RE.match(name):
            raise ctx.error(
                f"{ckey}.name", f"{name!r}: use letters, digits, '_', '-', '.' (it names a folder and a study)"
            )
        if not entry:
            raise ctx.error(ckey, f"group {name!r} fixes nothing; give the TrainConfig values that define it")
        values = {}
        for key, value in entry.items():
            key = config_key(ctx, ckey, key)
            check_named_value(ctx, f"{ckey}.{key}", key, value)
            if key in fixed:
                raise ctx.error(f"{ckey}.{key}", "is also under fixed; keep it in one place")
            values[key] = yaml_number(key, value)
        groups.append(RawGroup(name, plain(values), preset=False))
    return groups


def group_keys(groups: list[RawGroup]) -> dict[str, Param]:
    """The groups' keys as choice params of the values they take: what a param's `when` may name."""
    values: dict[str, list[Any]] = {}
    for group in groups:
        for key, value in group.values.items():
            if isinstance(value, list):
                continue  # a list (cnn_filters) is no condition value
            seen = values.setdefault(key, [])
            if not matches(value, tuple(seen)):
                seen.append(value)
    return {key: Param(name=key, kind="choice", choices=tuple(v)) for key, v in values.items()}


def applies(param: Param, known: Mapping[str, Any], params: Mapping[str, Param]) -> bool:
    """Can `param`'s `when` hold with the values `known`, the other params sampled as they may be?"""
    for key, allowed in param.when:
        if key in known:
            if not matches(known[key], allowed):
                return False
        elif key in params:
            possible = params[key].possible_values()
            if possible is not None and not any(matches(v, allowed) for v in possible):
                return False
        else:
            return False
    return True


def finish_groups(
    ctx: Context,
    raw: list[RawGroup],
    budgets: Mapping[str, int],
    reference: set[str],
    base: TrainConfig,
    fixed: Mapping[str, Any],
    params: Mapping[str, Param],
) -> tuple[Group, ...]:
    """Each group's values, budget and whether it is searched; every combination checked."""
    groups = []
    for group in raw:
        # a preset's defining keys are fixed; a config group fixes every key it gives
        open_params = {
            k: p for k, p in params.items() if (k not in DEFINING_KEYS if group.preset else k not in group.values)
        }
        known = {**fixed, **{k: v for k, v in group.values.items() if k not in open_params}}
        active = {k: p for k, p in open_params.items() if applies(p, known, open_params)}
        searched = group.name not in reference and bool(active)
        # searched: the preset's strengths are where the search starts, not fixed values
        values = {k: v for k, v in group.values.items() if not (searched and k in active)}
        gkey = f"groups {group.name!r}"
        group_base = apply(ctx, gkey, base, values)
        if not searched:  # a reference: the values its params would tune, explicit (leaderboard columns)
            values.update({k: plain(getattr(group_base, k)) for k in active if k not in values})
        if searched:
            rest = {k: p for k, p in params.items() if k not in values}
            check_combinations(ctx, group_base, rest, {**fixed, **values})
        groups.append(Group(group.name, values, budgets[group.name] if searched else 1, searched))
    return tuple(groups)


def group_space(space: Space, group: Group) -> Space:
    """The space of one group's own search: its values fixed, its study `<name>--<group>`, its budget.

    A group that is not searched becomes a one-point grid (one trial at its values, no study).
    """
    fixed = {**space.fixed, **group.values}
    meta = {trial_spec.GROUP: group.name, trial_spec.LABEL: group.name}
    common: dict[str, Any] = {"name": f"{space.name}--{group.name}", "fixed": fixed, "groups": (), "meta": meta}
    if not group.searched:
        return dataclasses.replace(
            space,
            **common,
            params={},
            searcher=SearcherSpec(kind="grid", skip_repeats=False),  # as the parser has it: a grid has no repeats
            grid=(GridPoint(label=group.name, overrides={}),),
            num_samples=1,
        )
    params = {k: p for k, p in space.params.items() if k not in group.values}
    return dataclasses.replace(space, **common, params=params, num_samples=group.num_samples)


def check_sampling_keys(ctx: Context, data: Mapping[str, Any], kind: str) -> None:
    """A grouped space: each group is searched by the space's Optuna searcher with groups.num_samples trials."""
    if kind == "grid":
        raise ctx.error("searcher.kind", "grid cannot search per group; use optuna-tpe or optuna-random with groups")
    for key in ("num_samples", "presets", "configs"):
        if key in data:
            where = "groups.num_samples (the trials of each group)" if key == "num_samples" else f"groups.{key}"
            raise ctx.error(key, f"with groups: it belongs under {where}; move it there")


__all__ = ["GROUP_KEYS", "RawGroup", "check_sampling_keys", "finish_groups", "group_keys", "group_space", "read_groups"]
