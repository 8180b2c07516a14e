"""The `final:` section of a space file: top-k configs x seeds, their epochs, and the control.

`final.control`: absent/null/false = none; `none` = the supervised-only objective
(`CONTROL_NONE`); a mapping = those TrainConfig overrides (an optional `name` labels it).
`final.postprocess`: true = the post-processing stage after it (search.postprocess).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sed.config import TrainConfig

from .checks import Context, apply, check_keys, check_named_value, config_key, integer, mapping, yaml_number
from .model import CONTROL_NONE, FinalSpec, plain

FINAL_KEYS = ("top_k", "seeds", "epochs", "control", "postprocess")


def parse_final(ctx: Context, raw: Any, num_samples: int, max_epochs: int, base: TrainConfig) -> FinalSpec | None:
    if raw is None:
        return None
    final_raw = mapping(ctx, "final", raw, "{top_k: 3, seeds: [1, 2, 3], epochs: 30}")
    check_keys(ctx, "final", final_raw, FINAL_KEYS)
    top_k = integer(ctx, "final.top_k", final_raw.get("top_k", 3), 1)
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
    postprocess = final_raw.get("postprocess", False)
    if not isinstance(postprocess, bool):
        raise ctx.error(
            "final.postprocess",
            f"expected true or false, got {postprocess!r} (true: tune the median window and threshold per class "
            "on each final run's validation scores, then score the public evaluation set with them)",
        )
    return FinalSpec(
        top_k=top_k, seeds=seeds, epochs=epochs, control=control, control_label=label, postprocess=postprocess
    )


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
