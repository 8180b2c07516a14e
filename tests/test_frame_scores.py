"""The threshold-free frame AP (sed.eval.frame_scores), its validation score and ASHA reading it at
the rungs (`scheduler.rung_metric`, search.searchers.RungMetricASHA)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.searchers import RungMetricASHA, make_scheduler
from search.space import parse_space
from sed.eval.frame_scores import frame_average_precision


def _one_class(scores: list[float], active: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(scores, np.float32)[None, :, None], np.array(active, np.float32)[None, :, None]


def test_frame_ap_by_hand():
    # frames ranked 0.9 (active), 0.8, 0.3 (active), 0.1: precision 1/1 at the first hit, 2/3 at
    # the second; AP = (1 + 2/3) / 2
    probs, targets = _one_class([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    assert frame_average_precision(probs, targets) == pytest.approx((1 + 2 / 3) / 2)
    # a perfect ranking is 1 whatever the scale: no threshold
    probs, targets = _one_class([0.04, 0.03, 0.02, 0.01], [1, 1, 0, 0])
    assert frame_average_precision(probs, targets) == pytest.approx(1.0)


def test_frame_ap_macro_over_the_classes_with_an_active_frame():
    probs = np.zeros((2, 3, 3), np.float32)
    targets = np.zeros((2, 3, 3), np.float32)
    # class 0: active frames ranked first (AP 1); class 1: its one active frame ranked last of 6 (AP 1/6)
    probs[0, :, 0], targets[0, :2, 0] = [0.9, 0.8, 0.1], 1
    probs[:, :, 1] = [[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]]
    targets[1, 2, 1] = 1
    # class 2 has no active frame: left out, not counted as 0
    probs[:, :, 2] = 0.99
    assert frame_average_precision(probs, targets) == pytest.approx((1 + 1 / 6) / 2)
    assert math.isnan(frame_average_precision(probs, np.zeros_like(targets)))
    with pytest.raises(ValueError, match=r"must both be \[clips, frames, classes\]"):
        frame_average_precision(probs, targets[:, :2])


SPACE = """
name: rung
num_samples: 4
scheduler: {{kind: asha, max_epochs: 9, grace_period: 1, reduction_factor: 3{rung}}}
fixed: {{rampup_epochs: 0, compute_val_frame_ap: true}}
params:
  consistency_weight: {{loguniform: [0.1, 10.0]}}
"""


def _space(rung: str = ""):
    return parse_space(textwrap.dedent(SPACE.format(rung=rung)), "rung.yaml")


def test_rung_metric_builds_an_asha_on_that_score_that_keeps_it():
    space = _space(", rung_metric: val_frame_ap")
    assert space.scheduler.rung_metric == "val_frame_ap" and space.rung_tune_metric == "best_val_frame_ap"
    assert space.tune_metric == "best_val_macro_f1"  # Optuna and the Tuner stay on the metric
    scheduler = make_scheduler(space)
    assert isinstance(scheduler, RungMetricASHA)
    # Tune hands it the Tuner's metric; it accepts the call and keeps its own
    assert scheduler.set_search_properties(space.tune_metric, space.mode) is True
    assert scheduler._metric == "best_val_frame_ap"
    # without rung_metric (or naming the metric itself): Ray's own ASHA, given the metric by Tune
    for rung in ("", ", rung_metric: val_macro_f1"):
        plain = make_scheduler(_space(rung))
        assert type(plain) is ASHAScheduler and plain.set_search_properties("best_val_macro_f1", "max")


class _Trial:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def test_the_rungs_compare_the_rung_metric_not_the_f1():
    # three trials reach the first rung (epoch 1); their F1 ranks a > b > c, their frame AP c > b > a.
    # ASHA (reduction factor 3) lets the trial best at the rung go on and stops the others
    def decisions(rung: str) -> dict[str, str]:
        space = _space(rung)
        scheduler = make_scheduler(space)
        scheduler.set_search_properties(space.tune_metric, space.mode)
        out = {}
        for name, f1, ap in (("a", 0.3, 0.2), ("b", 0.2, 0.3), ("c", 0.1, 0.4)):
            scheduler.on_trial_add(None, _Trial(name))
            result = {"training_iteration": 1, "best_val_macro_f1": f1, "best_val_frame_ap": ap}
            out[name] = scheduler.on_trial_result(None, _Trial(name), result)
        return out

    by_f1, by_ap = decisions(""), decisions(", rung_metric: val_frame_ap")
    assert by_f1["c"] == TrialScheduler.STOP and by_ap["c"] == TrialScheduler.CONTINUE
    assert by_ap["b"] == TrialScheduler.CONTINUE  # better than the first trial at the rung


def test_validation_reports_the_frame_ap_when_asked():
    from sed.config import TrainConfig, apply_overrides
    from sed.training.trainer import Trainer

    tiny = {
        "embedded_size": "tiny",
        "cnn_filters": [4, 8, 8, 8, 8, 8, 8],
        "rnn_hidden": 8,
        "batch_size": 8,
        "max_steps_per_epoch": 1,
        "epochs": 1,
        "device": "cpu",
    }
    off = Trainer(apply_overrides(TrainConfig(), tiny), progress=False).validate()
    assert off["val_frame_ap"] is None
    trainer = Trainer(apply_overrides(TrainConfig(), {**tiny, "compute_val_frame_ap": True}), progress=False)
    on = trainer.validate()
    split = trainer.data.split(trainer.config.selection_split)
    probs = trainer.predict(trainer.config.selection_split)
    assert on["val_frame_ap"] == pytest.approx(
        frame_average_precision(probs, split.strong_targets(trainer.data.labels))
    )
    assert 0 < on["val_frame_ap"] <= 1
