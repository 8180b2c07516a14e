"""A search per group (`groups:`, issue #21): parsing, each group's space, resume per group, the
Table 1 print and the plan -- no Ray (the end-to-end run: tests/test_search_cli.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from search import leaderboard as lb
from search import stages
from search.space import SpaceError, load_space, parse_space
from search.space.groups import group_space
from search.table1 import format_table1, table1_frame, verdicts

REPO = Path(__file__).resolve().parents[1]
SPACE = """
name: g
searcher: {kind: optuna-tpe, seed: 0}
scheduler: {kind: asha, max_epochs: 20, grace_period: 8, reduction_factor: 3}
fixed: {rampup_epochs: 8}
GROUPS
params:
  noise_scale: {loguniform: [0.01, 1.0], when: {augmentation: random}}
  epsilon: {loguniform: [0.01, 1.0], when: {augmentation: [adversarial, vat]}}
  consistency_weight: {loguniform: [0.1, 10.0], when: {augmentation: [random, vat, snr_noise]}}
  l2: {loguniform: [1.0e-7, 1.0e-3], when: {regularization: l2}}
final: {seeds: [1, 2, 3], epochs: 20}
"""
GROUPS = "groups: {num_samples: 5, presets: [none, baseline, random-latent-l2, vat-input-mt], reference: [baseline]}"


def space(groups: str = GROUPS, text: str = SPACE):
    return parse_space(text.replace("GROUPS", groups), "g.yaml")


def test_each_group_searches_what_applies_to_it():
    s = space()
    assert [(g.name, g.num_samples, g.searched) for g in s.groups] == [
        ("none", 1, False),  # no param applies: one trial at its values
        ("baseline", 1, False),  # the reference: one trial at its values
        ("random-latent-l2", 5, True),
        ("vat-input-mt", 5, True),
    ]
    assert s.num_samples == 12 and s.final.per_group == ("group",) and s.final.top_k == 1
    by_name = {g.name: g for g in s.groups}
    # the preset's strength (noise_scale 0.1) is where the search starts, not a fixed value
    assert by_name["random-latent-l2"].values == {
        "augmentation": "random",
        "locations": "latent",
        "regularization": "l2",
    }
    assert by_name["none"].values["consistency_weight"] == 0.0
    # the reference's values of the params that would apply to it are explicit: its columns say them
    assert by_name["baseline"].values == {
        "augmentation": "snr_noise",
        "locations": "input",
        "regularization": "mt",
        "consistency_weight": 2.0,
    }
    sub = group_space(s, by_name["vat-input-mt"])
    assert sub.name == "g--vat-input-mt" and sub.num_samples == 5 and sub.fixed["regularization"] == "mt"
    assert sub.meta == {"_group": "vat-input-mt", "_label": "vat-input-mt"}

    class Trial:  # what Optuna's define-by-run sees: epsilon and the weight, not l2 (mt) or noise_scale
        def __init__(self):
            self.asked = []

        def suggest_float(self, name, low, high, log=False):
            self.asked.append(name)
            return low

    trial = Trial()
    config = sub.define_by_run(trial)
    assert trial.asked == ["epsilon", "consistency_weight"] and config["_group"] == "vat-input-mt"
    fixed = group_space(s, by_name["baseline"])
    assert fixed.is_grid and fixed.num_samples == 1 and fixed.grid[0].label == "baseline"
    assert s.with_overrides(num_samples=3).num_samples == 1 + 1 + 3 + 3
    own = space(GROUPS.replace("reference: [baseline]", "reference: [baseline], budgets: {vat-input-mt: 9}"))
    assert [g.num_samples for g in own.groups] == [1, 1, 5, 9] and own.num_samples == 16


def test_config_groups_fix_every_key_they_give():
    s = space(
        "groups:\n  num_samples: 4\n  configs:\n    - {name: vat-cnn, augmentation: vat, locations: cnn, regularization: l2, epsilon: 0.2}"
        "\n    - {name: random-rnn, augmentation: random, locations: rnn, regularization: mt}"
    )
    vat, random = s.groups
    assert vat.values["epsilon"] == 0.2 and "epsilon" not in group_space(s, vat).params
    assert random.searched and "noise_scale" in group_space(s, random).params


@pytest.mark.parametrize(
    "groups, key, fix",
    [
        ("groups: [none, baseline]", "groups", "num_samples: 12"),
        ("groups: {presets: [none]}", "groups.num_samples", "give the trials of each searched group"),
        ("groups: {num_samples: 2, presets: [nonne]}", "groups.presets", "did you mean 'none'"),
        ("groups: {num_samples: 2, presets: [none], reference: [basline]}", "groups.reference", "name one of"),
        ("groups: {num_samples: 2, presets: [none], extra: 1}", "groups.extra", "allowed keys"),
        ("groups: {num_samples: 2}", "groups", "add `presets: [...]`"),
        ("groups: {num_samples: 2, configs: [{augmentation: vat}]}", "groups.configs[0].name", "needs a name"),
        (
            "groups: {num_samples: 2, configs: [{name: a, augmentaton: vat}]}",
            "groups.configs[0].augmentaton",
            "did you mean",
        ),
        ("groups: {num_samples: 2, presets: [none, none]}", "groups", "duplicate group names"),
        ("groups: {num_samples: 2, presets: [none], budgets: {nonne: 3}}", "groups.budgets", "did you mean 'none'"),
        ("groups: {num_samples: 2, presets: [none], budgets: {none: 0}}", "groups.budgets.none", "must be >= 1"),
        ("groups: {num_samples: 2, configs: [{name: a/b, augmentation: vat}]}", "groups.configs[0].name", "letters"),
        ("groups: {num_samples: 2, presets: [none]}\nnum_samples: 3", "num_samples", "under groups.num_samples"),
    ],
)
def test_bad_groups_are_refused_naming_the_key_and_the_fix(groups, key, fix):
    with pytest.raises(SpaceError, match=re.escape(f"g.yaml: {key}: ") + ".*" + re.escape(fix)):
        space(groups)


def test_groups_need_a_sampler_and_per_group_needs_groups():
    with pytest.raises(SpaceError, match="searcher.kind: grid cannot search per group"):
        space(text=SPACE.replace("optuna-tpe, seed: 0", "grid"))
    with pytest.raises(SpaceError, match=r"final\.per_group: `group` names the groups"):
        parse_space(
            "num_samples: 2\nscheduler: {kind: fifo, max_epochs: 2}\nparams:\n  epsilon: {uniform: [0.1, 1]}\n"
            "final: {per_group: [group]}",
            "g.yaml",
        )
    with pytest.raises(SpaceError, match="preset 'none' sets consistency_weight itself"):
        space(text=SPACE.replace("fixed: {rampup_epochs: 8}", "fixed: {rampup_epochs: 8, consistency_weight: 1}"))


def test_a_finished_group_is_not_rerun_and_an_unfinished_one_resumes(tmp_path, monkeypatch):
    s = space("groups: {num_samples: 2, presets: [none, random-latent-l2, vat-input-mt]}")
    exp_dir = tmp_path / "g"
    exp_dir.mkdir()
    old = pd.DataFrame(
        [
            {"trial_id": "a", "status": "COMPLETED", "group": "none", "selection_value": 0.2},
            {"trial_id": "b", "status": "COMPLETED", "group": "random-latent-l2", "selection_value": 0.3},
            {"trial_id": "c", "status": "INTERRUPTED", "group": "random-latent-l2", "selection_value": 0.1},
        ]
    )
    lb.write_parquet_atomic(old, exp_dir / lb.SEARCH_FILE, {})
    calls = []

    def fit(exp, sub, resume, storage, name, study, stage):
        calls.append((name, study, resume, sub.num_samples))
        group = sub.meta["_group"]
        rows = [{"trial_id": f"{group}{i}", "status": "COMPLETED", "selection_value": 0.5} for i in range(2)]
        return pd.DataFrame(rows), False

    monkeypatch.setattr(stages, "fit_search", fit)
    exp = stages.Experiment(s, exp_dir, None, None, None, stages.StopSignals())  # type: ignore[arg-type]
    frame = stages.run_group_searches(exp, resume=True)
    assert calls == [
        ("search--random-latent-l2", "g--random-latent-l2", True, 2),
        ("search--vat-input-mt", "g--vat-input-mt", True, 2),
    ]
    assert sorted(frame["trial_id"]) == [
        "a",
        "random-latent-l20",
        "random-latent-l21",
        "vat-input-mt0",
        "vat-input-mt1",
    ]
    assert frame["selection_value"].is_monotonic_decreasing


def summary_rows() -> pd.DataFrame:
    def row(label, trial, f1, psds, spread):
        out = {"label": label, "config_id": label, "search_trial_id": trial, "n_seeds": 3, "control": False}
        for metric, value in (("eval_macro_f1", f1), ("eval_psds", psds), ("eval_psds1", psds), ("eval_psds2", f1)):
            out |= {
                f"{metric}_mean": value,
                f"{metric}_ci95_low": value - spread,
                f"{metric}_ci95_high": value + spread,
            }
        return out

    return pd.DataFrame(
        [
            row("random-latent-l2", "t1", 0.40, 0.56, 0.01),
            row("none", "t0", 0.30, 0.50, 0.01),
            row("baseline", "t2", 0.36, 0.57, 0.02),
        ]
    )


def test_table1_rows_tuned_values_scores_paper_and_verdicts():
    s = space()  # vat-input-mt has no final row: not in the table
    search = pd.DataFrame(
        [
            {"trial_id": "t0", "group": "none", "noise_scale": math.nan, "consistency_weight": 0.0},
            {
                "trial_id": "t1",
                "group": "random-latent-l2",
                "noise_scale": 0.0123,
                "consistency_weight": 2.5,
                "l2": 3e-6,
            },
            {"trial_id": "t2", "group": "baseline", "noise_scale": math.nan, "consistency_weight": 2.0},
        ]
    )
    frame = table1_frame(s, search, summary_rows()).set_index("row")
    assert list(frame.index) == ["none", "baseline", "random-latent-l2"]  # the space's order
    assert frame.loc["random-latent-l2", "tuned"] == "noise_scale=0.0123 consistency_weight=2.5 l2=3e-06"
    assert frame.loc["baseline", "tuned"] == "fixed consistency_weight=2"
    assert frame.loc["random-latent-l2", "F1"] == "0.400 [0.390, 0.410]"
    assert frame.loc["random-latent-l2", "paper F1/PSDS"] == "0.388/0.565"
    # every CI above none's; against baseline: F1 (and PSDS2) above, PSDS (and PSDS1) overlap
    assert frame.loc["random-latent-l2", "vs none"] == ">>>>"
    assert frame.loc["random-latent-l2", "vs baseline"] == ">==>"
    assert frame.loc["none", "vs none"] == "." and frame.loc["none", "vs baseline"] == "<<<<"
    text = format_table1(s, search, summary_rows())
    assert text.startswith("== Table 1: each group tuned on validation") and "'>' the row's 95 % CI" in text


def test_verdicts_without_a_ci_are_unknown():
    row = {"eval_macro_f1_mean": 0.4, "eval_macro_f1_ci95_low": math.nan, "eval_macro_f1_ci95_high": math.nan}
    assert verdicts(row, dict(row)) == "????" and verdicts(row, None) == ""


def test_table1_yaml_tunes_every_row_but_the_reference_and_none():
    s = load_space(REPO / "spaces" / "table1.yaml")
    searched = {g.name: g.num_samples for g in s.groups if g.searched}
    assert [g.name for g in s.groups if not g.searched] == ["none", "baseline"]
    assert len(searched) == 7 and set(searched.values()) == {12}
    assert s.final.epochs == 200 and s.scheduler.max_epochs == 200 and s.final.per_group == ("group",)
    params = {g.name: sorted(p for p in group_space(s, g).params if group_space(s, g).params[p].when) for g in s.groups}
    assert json.dumps(params)  # every group's space builds


def test_plan_counts_each_groups_trials(capsys):
    from search.run import main

    assert (
        main(
            [
                "--space",
                str(REPO / "spaces" / "table1.yaml"),
                "--plan",
                "--plan-cluster",
                "16:1",
                "--plan-data",
                "desed2020",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| search none | 1 | 200 | 263 |" in out and "| search baseline | 1 | 200 | 263 |" in out
    assert out.count("| 12 | 50-200 (ASHA rungs [50, 150]") == 7
    assert "| final | 27 | 200 | 263 |" in out
