"""searcher.skip_repeats: TPE does not train a configuration this search already ran (search.searchers)."""

from __future__ import annotations

import textwrap

import optuna
import pytest

from search.searchers import MAX_REPEAT_DRAWS, make_search_alg
from search.space import parse_space

SPACE = """
name: repeats
metric: val_macro_f1
mode: max
num_samples: 12
searcher: {{kind: {kind}, seed: 3, n_startup_trials: 2{skip}}}
scheduler: {{kind: fifo, max_epochs: 2}}
fixed: {{rampup_epochs: 0}}
params:
  augmentation: {{choice: [random, mixup]}}
  consistency_weight: {{choice: [0.5, 1.0, 4.0]}}
"""

#: the score each of the 6 configurations would get (a deterministic objective: a repeat trains alike)
SCORE = {("random", 0.5): 0.1, ("random", 1.0): 0.2, ("random", 4.0): 0.3, ("mixup", 0.5): 0.15, ("mixup", 1.0): 0.25}
SCORE[("mixup", 4.0)] = 0.5


def searcher_for(kind: str = "optuna-tpe", skip: str = ""):
    space = parse_space(textwrap.dedent(SPACE.format(kind=kind, skip=skip)), "repeats.yaml")
    return space, make_search_alg(space)


def run_sequentially(searcher, trials: int) -> list[tuple[str, float]]:
    """Suggest and complete one trial at a time; the configurations trained, in order."""
    trained = []
    for n in range(trials):
        config = searcher.suggest(f"t{n}")
        key = (config["augmentation"], config["consistency_weight"])
        trained.append(key)
        searcher.on_trial_complete(f"t{n}", {"best_val_macro_f1": SCORE[key]})
    return trained


def test_space_defaults():
    assert searcher_for()[0].searcher.skip_repeats is True
    assert searcher_for("optuna-random")[0].searcher.skip_repeats is False
    assert searcher_for("optuna-random", ", skip_repeats: true")[0].searcher.skip_repeats is True


def test_tpe_trains_each_configuration_once_and_the_study_learns_the_repeats(capsys):
    _, searcher = searcher_for()
    trained = run_sequentially(searcher, 6)
    assert sorted(trained) == sorted(SCORE)  # the 6 distinct configurations, none twice
    study: optuna.Study = searcher._ot_study
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert searcher.repeats_skipped == len(repeats) > 0
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials if "ray_trial_id" in t.user_attrs}
    assert sorted(by_ray_id) == [f"t{n}" for n in range(6)]
    for repeat in repeats:  # told the earlier trial's value, with the same parameters
        earlier = by_ray_id[repeat.user_attrs["repeat_of"]]
        assert repeat.state == optuna.trial.TrialState.COMPLETE
        assert repeat.params == earlier.params and repeat.value == earlier.value
    assert "told it those trials' results instead of training them again" in capsys.readouterr().out


def test_without_skipping_tpe_trains_repeats():
    _, searcher = searcher_for(skip=", skip_repeats: false")
    trained = run_sequentially(searcher, 6)
    assert len(set(trained)) < 6
    assert searcher.repeats_skipped == 0


def test_an_exhausted_space_still_yields_a_trial(capsys):
    _, searcher = searcher_for()
    run_sequentially(searcher, 6)
    skipped = searcher.repeats_skipped
    config = searcher.suggest("t6")  # every configuration has run: MAX_REPEAT_DRAWS proposals, then a repeat runs
    assert (config["augmentation"], config["consistency_weight"]) in SCORE
    assert searcher.repeats_skipped == skipped + MAX_REPEAT_DRAWS
    assert f"{MAX_REPEAT_DRAWS} in a row, so the last one runs again" in capsys.readouterr().out


def test_a_failed_configuration_is_told_failed_again():
    _, searcher = searcher_for()
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", None, error=True)
    for n in range(1, 6):
        nxt = searcher.suggest(f"t{n}")
        searcher.on_trial_complete(
            f"t{n}", {"best_val_macro_f1": SCORE[(nxt["augmentation"], nxt["consistency_weight"])]}
        )
    repeats = [t for t in searcher._ot_study.trials if t.user_attrs.get("repeat_of") == "t0"]
    assert repeats and all(t.state == optuna.trial.TrialState.FAIL for t in repeats)


@pytest.mark.parametrize("skip", ["", ", skip_repeats: false"])
def test_resumed_searcher_keeps_what_it_has_seen(tmp_path, skip):
    _, searcher = searcher_for(skip=skip)
    run_sequentially(searcher, 3)
    searcher.save(str(tmp_path / "searcher.pkl"))
    _, restored = searcher_for(skip=skip)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.outcomes == searcher.outcomes and restored.skip_repeats == searcher.skip_repeats
