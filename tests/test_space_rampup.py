"""ASHA's first rung may not come before the ramp-up ends (issue #21)."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.space import SpaceError, load_space, parse_space

REPO = Path(__file__).resolve().parents[1]

SPACE = """
name: r
num_samples: 2
scheduler: {kind: asha, max_epochs: 30, grace_period: GRACE, reduction_factor: 3}
fixed: {regularization: l2, rampup_epochs: RAMP}
params:
  noise_scale: {loguniform: [0.01, 1.0]}
"""


def space(grace: int, ramp: float, extra: str = "") -> object:
    return parse_space(SPACE.replace("GRACE", str(grace)).replace("RAMP", str(ramp)) + extra, "r.yaml")


def test_a_first_rung_before_the_rampup_ends_is_refused_with_the_fix():
    with pytest.raises(SpaceError) as refused:
        space(5, 8)
    message = str(refused.value)
    assert message.startswith("r.yaml: scheduler.grace_period: 5 comes before the ramp-up ends")
    assert "fixed.rampup_epochs 8" in message and "at 0.50 of their value" in message
    assert "set grace_period >= 8" in message
    assert space(8, 8).scheduler.grace_period == 8
    assert space(1, 0).scheduler.grace_period == 1  # no ramp-up


def test_a_searched_rampup_counts_with_its_largest_value():
    text = SPACE.replace("GRACE", "8").replace(", rampup_epochs: RAMP", "") + "  rampup_epochs: {int: [4, 12]}\n"
    with pytest.raises(SpaceError, match=r"params\.rampup_epochs 12"):
        parse_space(text, "r.yaml")


def test_fifo_judges_nothing_early():
    text = SPACE.replace(
        "{kind: asha, max_epochs: 30, grace_period: GRACE, reduction_factor: 3}", "{kind: fifo, max_epochs: 30}"
    )
    assert parse_space(text.replace("RAMP", "50"), "r.yaml").scheduler.kind == "fifo"


@pytest.mark.parametrize("name", ["latent", "input", "all", "realistic", "demo"])
def test_shipped_asha_spaces_judge_after_the_rampup(name):
    shipped = load_space(REPO / "spaces" / f"{name}.yaml")
    assert shipped.scheduler.grace_period >= shipped.sample_config({}).rampup_epochs
