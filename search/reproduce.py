"""The `command` column: the exact `python -m sed.train ...` line that retrains a leaderboard row.

`TrainCommand(data, cache_dir, runtime)` turns a trial config (search or
final stage: the TrainConfig overrides plus `_` meta keys) into one shell
line: `python -m sed.train --preset baseline` (sed.train's starting point)
then one `--set key=value` for every `TrainConfig` field whose value in
the trial differs from that preset -- the trial's fixed, sampled and
runtime values (`num_threads` = the trial's CPUs), its `seed` and `epochs`
included -- `--data ROOT` when the run used a dataset folder, `--cache-dir`
when it named one, and `--out results/reproduce/<config_id>-seed<seed>`.
Each line is checked when it is made: reading its `--set` values back with
`sed.config` (`parse_set_arguments`, `apply_overrides`) must give exactly
the trial's config, else `ValueError` (a value that does not survive the
text round trip).
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sed.config import TrainConfig, apply_overrides, parse_set_arguments
from sed.presets import PRESETS

from . import trial_spec
from .space import config_id

#: sed.train's default --preset: the config its --set values are applied to.
BASE_PRESET = "baseline"


def set_text(value: Any) -> str:
    """A config value as `--set` text that `sed.config.coerce_value` reads back to the same value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)  # shortest text that round-trips exactly
    return str(value)


@dataclass(frozen=True)
class TrainCommand:
    """Makes a row's `command` (module docstring); picklable (it travels inside Ray's callbacks)."""

    data: str | None = None
    cache_dir: str | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    python: str = "python"

    def config(self, trial_config: Mapping[str, Any]) -> TrainConfig:
        """The TrainConfig the trial ran (as `search.trainable.train_sed` builds it)."""
        return trial_spec.train_config(trial_config, self.runtime)

    def __call__(self, trial_config: Mapping[str, Any]) -> str:
        cfg = self.config(trial_config)
        base = PRESETS[BASE_PRESET]
        sets = [
            f"{f.name}={set_text(getattr(cfg, f.name))}"
            for f in dataclasses.fields(TrainConfig)
            if f.name != "data" and getattr(cfg, f.name) != getattr(base, f.name)
        ]
        rebuilt = apply_overrides(base, parse_set_arguments(sets))
        if dataclasses.replace(rebuilt, data=cfg.data) != cfg:
            differ = [
                f.name for f in dataclasses.fields(TrainConfig) if getattr(rebuilt, f.name) != getattr(cfg, f.name)
            ]
            raise ValueError(
                f"the sed.train command of config {config_id(trial_config)} would not reproduce {', '.join(differ)}"
            )
        out = f"results/reproduce/{trial_config.get(trial_spec.CONFIG_ID) or config_id(trial_config)}-seed{cfg.seed}"
        parts = [self.python, "-m", "sed.train", "--preset", BASE_PRESET]
        for item in sets:
            parts += ["--set", item]
        data = self.data or cfg.data
        if data:
            parts += ["--data", data]
        if self.cache_dir:
            parts += ["--cache-dir", self.cache_dir]
        parts += ["--out", out]
        return shlex.join(parts)


def command_for_run(data: str | None, cache_dir: str | None, runtime: Mapping[str, Any]) -> TrainCommand:
    return TrainCommand(data=data, cache_dir=cache_dir, runtime=dict(runtime), python=sys.executable or "python")
