"""ASHA may not judge a trial before its objective is fully on (issue #21).

The learning rate and the consistency weight w(t) ramp up over `rampup_epochs`
(sigmoid `exp(-5 (1 - t)^2)`, `sed.training.objectives.sigmoid_rampup`). ASHA's
first rung stops trials at `grace_period` epochs; before the ramp-up ends it
compares configurations whose consistency term is only partly on (at t = 5/8 the
ramp is 0.49), which favours weakly regularised ones. Such a space is refused
(not warned about: a warning scrolls past in the trial logs while the bias it
names decides the search).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sed.config import TrainConfig

from .checks import Context
from .model import Param, SchedulerSpec


def _largest_rampup(
    base: TrainConfig, fixed: Mapping[str, object], params: Mapping[str, Param], grid_rampups: list[float]
) -> tuple[float, str]:
    """(the longest ramp-up a trial can get, the key that sets it)."""
    param = params.get("rampup_epochs")
    if param is not None:
        possible = param.possible_values()
        top = max(float(v) for v in possible) if possible else float(param.high)  # type: ignore[arg-type]
        values = [(top, "params.rampup_epochs")]
    elif "rampup_epochs" in fixed:
        values = [(float(base.rampup_epochs), "fixed.rampup_epochs")]
    else:
        values = [(float(base.rampup_epochs), "rampup_epochs (the default; set it under fixed)")]
    values += [(v, "a grid point's rampup_epochs") for v in grid_rampups]
    return max(values, key=lambda pair: pair[0])


def check_first_rung(
    ctx: Context,
    scheduler: SchedulerSpec,
    base: TrainConfig,
    fixed: Mapping[str, object],
    params: Mapping[str, Param],
    grid_rampups: list[float] | None = None,
) -> None:
    """Refuse an ASHA first rung (grace_period) that comes before the ramp-up ends."""
    if scheduler.kind != "asha":
        return  # FIFO judges nothing before max_epochs
    rampup, key = _largest_rampup(base, fixed, params, grid_rampups or [])
    if scheduler.grace_period < rampup:
        weight = math.exp(-5.0 * (1.0 - scheduler.grace_period / rampup) ** 2)
        raise ctx.error(
            "scheduler.grace_period",
            f"{scheduler.grace_period} comes before the ramp-up ends ({key} {rampup:g}): ASHA's first rung would "
            f"compare trials whose consistency weight and learning rate are at {weight:.2f} of their value, "
            f"which favours weakly regularised ones; set grace_period >= {math.ceil(rampup)}, shorten "
            "rampup_epochs, or use scheduler kind: fifo",
        )


__all__ = ["check_first_rung"]
