"""`--plan` of a space with `groups:`: one search stage per group, then the best of each x seeds.

The groups' searches run one after the other (`search.stages.run_group_searches`), so
each is planned as its own stage (`search.plan.plan_stages` on the group's space: its
trials, ASHA's expected epochs, its objective's measured step time) and their wall times
add up. The final stage retrains `final.top_k` configurations of every group x seeds,
each at its own group's step time, list-scheduled on the slots like any final stage.
"""

from __future__ import annotations

import dataclasses

from sed.config import apply_overrides

from .packing import Packing
from .plan import (
    POSTPROCESS_S_PER_CLIP,
    STAGE_OVERHEAD_S,
    TRIAL_STARTUP_S,
    DataSizes,
    StagePlan,
    StepCost,
    eval_seconds,
    held,
    makespan,
    plan_stages,
)
from .space import CONTROL_NONE, Space
from .space.groups import group_space


def plan_group_stages(space: Space, packing: Packing, sizes: DataSizes, cost: StepCost) -> list[StagePlan]:
    """A `search <group>` stage per group, then `final` (best of each group x seeds, the control)."""
    stages = []
    for group in space.groups:
        sub = dataclasses.replace(group_space(space, group), final=None)
        (stage,) = plan_stages(sub, packing, sizes, cost)
        stages.append(dataclasses.replace(stage, name=f"search {group.name}"))
    if space.final is None:
        return stages
    final = space.final
    base = space.base_config()
    configs = [apply_overrides(base, g.values) for g in space.groups for _ in range(final.top_k if g.searched else 1)]
    if final.control is not None:
        configs.append(apply_overrides(base, {**CONTROL_NONE, **final.control}))
    steps = sizes.steps_per_epoch(base)
    durations = []
    step_times = []
    for cfg in configs:
        step_s, val_s = cost(cfg)
        step_times.append(step_s)
        durations += [TRIAL_STARTUP_S + final.epochs * (steps * step_s + val_s) + eval_seconds(sizes)] * len(
            final.seeds
        )
    at_once = packing.at_once(len(durations))
    wall = makespan(durations, at_once) + STAGE_OVERHEAD_S
    if final.postprocess:
        wall += len(durations) * POSTPROCESS_S_PER_CLIP * (sizes.validation + sizes.public_eval)
    stages.append(
        StagePlan(
            "final",
            len(durations),
            f"{final.epochs}",
            float(final.epochs),
            steps,
            at_once,
            wall,
            sum(durations) * packing.gpu / 3600,
            sum(step_times) / len(step_times),
            held(packing, at_once) * wall / 3600,
        )
    )
    return stages


__all__ = ["plan_group_stages"]
