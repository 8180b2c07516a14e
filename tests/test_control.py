"""The no-augmentation control of the final stage (issue 13, item 2): parsing, points, summary, verdict."""

from __future__ import annotations

import pandas as pd
import pytest

from search import final as final_stage
from search import summary as summary_module
from search.console import print_summary
from search.space import CONTROL_ID, CONTROL_NONE, SpaceError, parse_space

SPACE = """
name: ctl
num_samples: 3
scheduler: {kind: asha, max_epochs: 4, grace_period: 1}
fixed: {regularization: l2, cnn_filters: [4, 8], rnn_hidden: 4, lr: 0.01}
params:
  augmentation: {choice: [random, mixup]}
  noise_scale: {loguniform: [0.01, 1.0], when: {augmentation: random}}
final: {top_k: 2, seeds: [1, 2], epochs: 3, control: CONTROL}
"""


def space_with(control: str):
    return parse_space(SPACE.replace("CONTROL", control), "ctl.yaml")


def test_control_none_is_the_supervised_objective_on_the_fixed_values():
    space = space_with("none")
    assert space.final.control == CONTROL_NONE
    assert "control: no augmentation" in space.summary()
    top = pd.DataFrame(
        {
            "config_id": ["c1", "c2"],
            "label": ["", ""],
            "trial_id": ["t1", "t2"],
            "config_json": [
                '{"augmentation": "random", "noise_scale": 0.1, "regularization": "l2"}',
                '{"augmentation": "mixup", "regularization": "l2"}',
            ],
        }
    )
    points = final_stage.final_points(top, space)
    controls = [p for p in points if p.get("_control")]
    assert len(points) == 6 and len(controls) == 2
    assert sorted(p["seed"] for p in controls) == [1, 2]
    for point in controls:
        assert point["_config_id"] == CONTROL_ID and point["_rank"] == 3
        assert point["augmentation"] == "none" and point["regularization"] == "none"
        assert point["consistency_weight"] == 0.0
        assert point["cnn_filters"] == [4, 8] and point["lr"] == 0.01  # the space's fixed values
        assert point["epochs"] == 3
    # the control is a pair of the plan like any other (resume skips it once done)
    assert (CONTROL_ID, 1) in {final_stage.pair_of(p) for p in points}


def test_control_mapping_and_refusals():
    space = space_with("{name: mt only, augmentation: snr_noise, regularization: mt, noise_snr: 30}")
    assert space.final.control == {"augmentation": "snr_noise", "regularization": "mt", "noise_snr": 30}
    assert space.final.control_label == "control: mt only"
    with pytest.raises(SpaceError, match=r"final.control.*expected `none`"):
        space_with("yes")
    with pytest.raises(SpaceError, match=r"final.control.agumentation.*not a TrainConfig field.*augmentation"):
        space_with("{agumentation: none}")
    with pytest.raises(SpaceError, match=r"final.control.augmentation.*unknown augmentation"):
        space_with("{augmentation: nothing}")
    # mean teacher without augmentation is not a valid objective: refused before anything runs
    with pytest.raises(SpaceError, match=r"final.control.*regularization='mt' with augmentation='none'"):
        space_with("{augmentation: none, regularization: mt}")
    assert space_with("null").final.control is None


def _summary(best: list[float], control: list[float]) -> pd.DataFrame:
    n_best, n_ctl = len(best), len(control)
    final = pd.DataFrame(
        {
            "config_id": ["a"] * n_best + [CONTROL_ID] * n_ctl,
            "label": ["A"] * n_best + ["control: no augmentation"] * n_ctl,
            "rank": [1] * n_best + [2] * n_ctl,
            "search_trial_id": ["t1"] * n_best + [""] * n_ctl,
            "control": [False] * n_best + [True] * n_ctl,
            "seed": list(range(1, n_best + 1)) + list(range(1, n_ctl + 1)),
            "status": ["COMPLETED"] * (n_best + n_ctl),
            "eval_macro_f1": best + control,
            "eval_psds": best + control,
        }
    )
    return final_stage.summary_frame(final, ["a"], control=True)


def test_comparison_verdicts_by_hand():
    # best 0.40, 0.42, 0.44: mean 0.42, std 0.02, half-width 4.3027 * 0.02 / sqrt(3) = 0.04968
    summary = _summary([0.40, 0.42, 0.44], [0.30, 0.31, 0.32])
    assert list(summary["control"]) == [False, True]
    cmp = summary_module.control_comparison(summary, "eval_macro_f1")
    assert cmp.best[0] == pytest.approx(0.42) and cmp.best[1] == pytest.approx(0.42 - 0.0496827, abs=1e-6)
    assert cmp.control[0] == pytest.approx(0.31)
    assert cmp.difference == pytest.approx(0.11)
    assert cmp.verdict == "beats" and "beats the control" in cmp.sentence()
    assert _summary_verdict([0.30, 0.31, 0.32], [0.40, 0.42, 0.44]) == "below"
    assert _summary_verdict([0.30, 0.36, 0.33], [0.31, 0.32, 0.33]) == "overlap"
    assert _summary_verdict([0.40], [0.30, 0.31]) == "unknown"
    # no control row -> no comparison
    no_control = summary_module.summarize_final(
        pd.DataFrame({"config_id": ["a"], "seed": [1], "status": ["COMPLETED"], "eval_macro_f1": [0.5]}),
        metrics=("eval_macro_f1",),
    )
    assert summary_module.control_comparison(no_control, "eval_macro_f1") is None


def _summary_verdict(best: list[float], control: list[float]) -> str:
    return summary_module.control_comparison(_summary(best, control), "eval_macro_f1").verdict


def test_summary_prints_the_control_beside_the_best(tmp_path, capsys):
    space = space_with("none")
    search = pd.DataFrame({"trial_id": ["t1"], "status": ["COMPLETED"], "val_macro_f1": [0.4]})
    print_summary(space, search, _summary([0.40, 0.42, 0.44], [0.30, 0.31, 0.32]), tmp_path)
    out = capsys.readouterr().out
    assert "control: no augmentation" in out
    assert "eval_macro_f1: best config A 0.4200 [0.3703, 0.4697] (n=3) vs control 0.3100" in out
    assert "beats the control" in out


def test_rows_written_before_the_control_column_are_not_controls():
    # a resumed final stage appends new rows (with `control`) to old ones (without): NaN is not a control
    old = pd.DataFrame({"config_id": ["a"], "rank": [1], "seed": [1], "status": ["COMPLETED"], "eval_macro_f1": [0.3]})
    new = pd.DataFrame(
        {
            "config_id": [CONTROL_ID],
            "rank": [2],
            "seed": [1],
            "status": ["COMPLETED"],
            "eval_macro_f1": [0.2],
            "control": [True],
        }
    )
    summary = summary_module.summarize_final(pd.concat([old, new], ignore_index=True), metrics=("eval_macro_f1",))
    assert list(summary["control"]) == [False, True]
