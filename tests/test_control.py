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
fixed: {regularization: l2, cnn_filters: [4, 8], rnn_hidden: 4, lr: 0.01, rampup_epochs: 1}
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
    # sampled configs carry no grid label: the final stage names them by what they do
    assert [p["_label"] for p in points if not p.get("_control")] == ["random at input"] * 2 + ["mixup at input"] * 2
    assert final_stage.describe({"augmentation": "filter", "locations": "input"}) == "filter at input"
    assert final_stage.describe({"augmentation": "none"}) == "no augmentation"
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
    return final_stage.summary_frame(_final(best, control), ["a"], control=True)


def _final(best: list[float], control: list[float]) -> pd.DataFrame:
    n_best, n_ctl = len(best), len(control)
    return pd.DataFrame(
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


def test_paired_comparison_by_hand():
    # differences 0.01, 0.02, 0.03 (seeds 1-3): mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 3.4641 on
    # 2 degrees of freedom: two-sided p = 0.0742; interval 0.02 +- 4.3027 * 0.01 / sqrt 3 = [-0.00484, 0.04484];
    # Wilcoxon: all 3 signs positive, exact p = 2 / 2**3 = 0.25
    best, control = [0.31, 0.42, 0.53], [0.30, 0.40, 0.50]
    paired = summary_module.paired_comparison(_final(best, control), _summary(best, control), "eval_macro_f1")
    assert paired.seeds == (1, 2, 3)
    assert paired.differences == pytest.approx((0.01, 0.02, 0.03))
    assert paired.mean == pytest.approx(0.02)
    assert (paired.low, paired.high) == pytest.approx((-0.0048414, 0.0448414), abs=1e-6)
    assert paired.t_p == pytest.approx(0.07418, abs=1e-4)
    assert paired.wilcoxon_p == pytest.approx(0.25)
    assert paired.verdict == "same"
    assert "higher on 3 of 3 seeds" in paired.sentence() and "no difference at p < 0.05" in paired.sentence()
    # the CIs of the two configurations overlap widely, yet 5 seeds that all gain 0.02-0.04 are a paired win:
    # differences 0.02, 0.03, 0.04, 0.03, 0.03: mean 0.03, sd 0.00707, t = 9.487 on 4 df, p = 0.000689;
    # Wilcoxon exact 2 / 2**5 = 0.0625
    best, control = [0.22, 0.43, 0.34, 0.53, 0.63], [0.20, 0.40, 0.30, 0.50, 0.60]
    summary = _summary(best, control)
    assert summary_module.control_comparison(summary, "eval_macro_f1").verdict == "overlap"
    paired = summary_module.paired_comparison(_final(best, control), summary, "eval_macro_f1")
    assert paired.t_p == pytest.approx(0.000689, rel=1e-2)
    assert paired.wilcoxon_p == pytest.approx(0.0625)
    assert paired.verdict == "beats" and "beats the control (paired t-test p < 0.05)" in paired.sentence()
    flipped = summary_module.paired_comparison(_final(control, best), _summary(control, best), "eval_macro_f1")
    assert flipped.verdict == "below" and flipped.mean == pytest.approx(-0.03)
    # only the seeds both completed are paired; a failed seed (NaN) is left out
    final = _final([0.22, float("nan"), 0.34], [0.20, 0.40, 0.30, 0.50])
    paired = summary_module.paired_comparison(final, _summary([0.22, 0.34], [0.20, 0.40]), "eval_macro_f1")
    assert paired.seeds == (1, 3) and paired.differences == pytest.approx((0.02, 0.04))
    # no control: no comparison
    no_control = final[final["control"] == False]  # noqa: E712
    assert summary_module.paired_comparison(no_control, summary_module.summarize_final(no_control), "x") is None


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
    assert "eval_macro_f1, paired by seed" not in out  # no final.parquet in exp_dir: no seeds to pair


def test_summary_prints_the_paired_test(tmp_path, capsys):
    from search import leaderboard as lb

    space = space_with("none")
    search = pd.DataFrame({"trial_id": ["t1"], "status": ["COMPLETED"], "val_macro_f1": [0.4]})
    best, control = [0.22, 0.43, 0.34, 0.53, 0.63], [0.20, 0.40, 0.30, 0.50, 0.60]
    lb.write_parquet_atomic(_final(best, control), tmp_path / lb.FINAL_FILE, {})
    print_summary(space, search, _summary(best, control), tmp_path)
    out = capsys.readouterr().out
    assert "not distinguishable from the control" in out  # the intervals overlap...
    assert (
        "eval_macro_f1, paired by seed (5 seeds: 1, 2, 3, 4, 5): A minus control +0.0300 [+0.0212, +0.0388], "
        "higher on 5 of 5 seeds, paired t-test p = 0.000689, Wilcoxon p = 0.0625: the best configuration beats "
        "the control (paired t-test p < 0.05)"
    ) in out  # ...the paired test sees the win


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
