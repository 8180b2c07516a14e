"""final.per_group: the best configuration of each group goes to the final stage (issue #21)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from search import final as final_stage
from search.space import SpaceError, parse_space

SPACE = """
name: g
num_samples: 6
scheduler: {kind: fifo, max_epochs: 2}
fixed: {regularization: l2}
params:
  augmentation: {choice: [random, mixup, vat]}
  locations: {choice: [cnn, rnn]}
  consistency_weight: {loguniform: [0.1, 10.0]}
final: FINAL
"""


def space(final: str):
    return parse_space(SPACE.replace("FINAL", final), "g.yaml")


def search_rows() -> pd.DataFrame:
    rows = []
    for i, (aug, loc, score) in enumerate(
        [
            ("vat", "cnn", 0.9),
            ("vat", "rnn", 0.8),
            ("random", "cnn", 0.7),
            ("mixup", "rnn", 0.6),
            ("random", "rnn", 0.5),
        ]
    ):
        config = {"augmentation": aug, "locations": loc, "consistency_weight": 1.0 + i}
        rows.append(
            {
                "trial_id": f"t{i}",
                "status": "COMPLETED",
                "label": "",
                "config_id": f"c{i}",
                "augmentation": aug,
                "locations": loc,
                "selection_value": score,
                "config_json": json.dumps(config),
            }
        )
    rows.append({**rows[0], "trial_id": "t9", "config_id": "c9", "status": "ERROR", "selection_value": 0.95})
    return pd.DataFrame(rows)


def test_the_best_of_each_group_in_the_order_of_their_best_trial():
    grouped = space("{per_group: [augmentation], seeds: [1, 2]}")
    assert grouped.final.per_group == ("augmentation",) and grouped.final.top_k == 1
    top = final_stage.select_top(search_rows(), grouped)
    assert list(top["trial_id"]) == ["t0", "t2", "t3"]  # best vat, best random, best mixup
    points = final_stage.final_points(top, grouped)
    assert [p["_label"] for p in points[::2]] == ["augmentation=vat", "augmentation=random", "augmentation=mixup"]
    two = space("{per_group: [augmentation, locations], top_k: 1, seeds: [1]}")
    assert list(final_stage.select_top(search_rows(), two)["trial_id"]) == ["t0", "t1", "t2", "t3", "t4"]
    overall = space("{top_k: 2, seeds: [1]}")
    assert list(final_stage.select_top(search_rows(), overall)["trial_id"]) == ["t0", "t1"]


def test_per_group_names_config_keys():
    with pytest.raises(SpaceError, match=r"final\.per_group"):
        space("{per_group: [augmentaton], seeds: [1]}")
