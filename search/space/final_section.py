"""The `final:` section of a space file: top-k configs x seeds, their epochs, and the control.

`final.per_group: [augmentation, locations]`: the top_k (default 1) best configurations of
each group (each combination of those keys' values), so every method is seen at its best.
In a space with `groups:` (search.space.groups) `per_group` defaults to `[group]`: the best
configuration of each group's own search.

`final.control`: absent/null/false = none; `none` = the supervised-only objective
(`CONTROL_NONE`); a mapping = those TrainConfig overrides (an optional `name` labels it).
`final.postprocess`: true = the post-processing stage after it (search.postprocess).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sed.config import TrainConfig

from .checks import Context, apply, boolean, check_keys, check_named_value, config_key, integer, mapping, yaml_number
from .model import CONTROL_NONE, FinalSpec, plain

FINAL_KEYS = ("top_k", "seeds", "epochs", "control", "postprocess", "per_group")


def parse_final(
    ctx: Context, raw: Any, num_samples: int, max_epochs: int, base: TrainConfig, grouped: bool = False
) -> FinalSpec | None:
    """`final:`; `num_samples`: the trials of the search (of each group with `grouped`)."""
    if raw is None:
        return None
    final_raw = mapping(ctx, "final", raw, "{top_k: 3, seeds: [1, 2, 3], epochs: 30}")
    check_keys(ctx, "final", final_raw, FINAL_KEYS)
    per_group = _per_group(ctx, final_raw.get("per_group", ["group"] if grouped else None), grouped)
    top_k = integer(ctx, "final.top_k", final_raw.get("top_k", 1 if per_group else 3), 1)
    if top_k > num_samples:
        raise ctx.error(
            "final.top_k",
            f"{top_k} is larger than num_samples={num_samples} (the number of search trials); lower top_k",
        )
    seeds_raw = final_raw.get("seeds", [1, 2, 3])
    if not isinstance(seeds_raw, list) or not seeds_raw:
        raise ctx.error("final.seeds", f"expected a non-empty list of integer seeds, got {seeds_raw!r}")
    seeds = tuple(integer(ctx, "final.seeds", s, 0) for s in seeds_raw)
    if len(set(seeds)) != len(seeds):
        raise ctx.error("final.seeds", f"duplicate seeds in {list(seeds)}")
    epochs = integer(ctx, "final.epochs", final_raw.get("epochs", max_epochs), 1)
    control, label = _control(ctx, final_raw.get("control"), base)
    postprocess = boolean(
        ctx,
        "final.postprocess",
        final_raw.get("postprocess", False),
        " (true: tune the median window and threshold per class on each final run's validation scores, "
        "then score the public evaluation set with them)",
    )
    return FinalSpec(
        top_k=top_k,
        seeds=seeds,
        epochs=epochs,
        control=control,
        control_label=label,
        postprocess=postprocess,
        per_group=per_group,
    )


def _per_group(ctx: Context, raw: Any, grouped: bool) -> tuple[str, ...]:
    """`final.per_group`: TrainConfig keys whose value combinations are the groups (e.g. every
    augmentation x location), each represented by its own top_k in the final stage; `group`
    (a `groups:` space's own groups) only with `groups:`."""
    if raw is None or raw is False:
        return ()
    keys = [raw] if isinstance(raw, str) else raw
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ctx.error(
            "final.per_group", f"expected a list of TrainConfig keys, e.g. [augmentation, locations], got {raw!r}"
        )
    for key in keys:
        if key == "group" and not grouped:
            raise ctx.error("final.per_group", "`group` names the groups of a `groups:` section; add one or remove it")
        if key != "group":
            config_key(ctx, "final.per_group", key)
    return tuple(keys)


def _control(ctx: Context, raw: Any, base: TrainConfig) -> tuple[dict[str, Any] | None, str]:
    """`final.control`: absent/null/false = none; `none` = the supervised-only objective;
    a mapping = those TrainConfig overrides (an optional `name` labels it)."""
    if raw is None or raw is False:
        return None, ""
    if raw == "none":
        overrides, label = dict(CONTROL_NONE), "control: no augmentation"
    elif isinstance(raw, Mapping):
        overrides = dict(raw)
        name = overrides.pop("name", None)
        if name is not None and not isinstance(name, str):
            raise ctx.error("final.control.name", f"expected text, got {name!r}")
        for key in overrides:
            config_key(ctx, "final.control", key)
        label = f"control: {name}" if name else "control"
    else:
        raise ctx.error(
            "final.control",
            f"expected `none` (the supervised-only objective) or a mapping of TrainConfig overrides, got {raw!r}",
        )
    for key, value in overrides.items():
        check_named_value(ctx, f"final.control.{key}", key, value)
        overrides[key] = plain(yaml_number(key, value))
    apply(ctx, "final.control", base, overrides)
    return overrides, label
