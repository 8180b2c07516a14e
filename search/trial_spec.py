"""What a trial's config dict holds, and the one conversion of it into a `TrainConfig`.

A trial config (what Ray Tune hands the trainable, what Tune stores as `params.json`) is a
flat dict: `TrainConfig` overrides (the space's fixed values, `epochs`, the sampled
values) plus meta keys that start with `_`, which the trainer never sees. The meta keys
are named here once:

- `LABEL` (`_label`): the grid point's or the final config's label;
- `CONFIG_ID` (`_config_id`), `RANK` (`_rank`), `SEARCH_TRIAL_ID` (`_search_trial_id`):
  which search config a final-stage trial retrains, its rank, and its search trial;
- `EVALUATE` (`_evaluate`): score the selected model on the public evaluation set;
- `CONTROL` (`_control`): the final stage's control config;
- `GROUP` (`_group`): the group of a `groups:` space the trial belongs to (`search.space.groups`).

`train_config(trial, runtime)` is how `search.trainable`, `search.reproduce` and
`search.space` turn a trial into the config it trains: runtime values first, the trial's
overrides win, validated by `sed.config.apply_overrides`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sed.config import TrainConfig, apply_overrides

META_PREFIX = "_"
LABEL = "_label"
CONFIG_ID = "_config_id"
RANK = "_rank"
SEARCH_TRIAL_ID = "_search_trial_id"
EVALUATE = "_evaluate"
CONTROL = "_control"
GROUP = "_group"
META_KEYS: tuple[str, ...] = (LABEL, CONFIG_ID, RANK, SEARCH_TRIAL_ID, EVALUATE, CONTROL, GROUP)


def is_meta(key: str) -> bool:
    return key.startswith(META_PREFIX)


def overrides_of(trial: Mapping[str, Any]) -> dict[str, Any]:
    """The `TrainConfig` overrides of a trial config (meta keys dropped)."""
    return {k: v for k, v in trial.items() if not is_meta(k)}


def meta_of(trial: Mapping[str, Any]) -> dict[str, Any]:
    """The meta keys of a trial config."""
    return {k: v for k, v in trial.items() if is_meta(k)}


def split(trial: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(TrainConfig overrides, meta keys) of a trial config."""
    return overrides_of(trial), meta_of(trial)


def train_config(trial: Mapping[str, Any], runtime: Mapping[str, Any] | None = None) -> TrainConfig:
    """The `TrainConfig` a trial trains: `runtime` values, then the trial's overrides, validated."""
    return apply_overrides(TrainConfig(), {**dict(runtime or {}), **overrides_of(trial)})


__all__ = [
    "CONFIG_ID",
    "CONTROL",
    "EVALUATE",
    "GROUP",
    "LABEL",
    "META_KEYS",
    "META_PREFIX",
    "RANK",
    "SEARCH_TRIAL_ID",
    "is_meta",
    "meta_of",
    "overrides_of",
    "split",
    "train_config",
]
