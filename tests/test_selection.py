"""selection_metric: the epoch a run keeps follows the metric its search ranks on."""

from __future__ import annotations

import textwrap

import pytest
import torch

from search.space import SpaceError, parse_space
from sed.config import ConfigError, TrainConfig, apply_overrides
from sed.training.trainer import Trainer

SPACE = """
name: t
metric: {metric}
num_samples: 2
searcher: {{kind: optuna-random, seed: 0}}
scheduler: {{kind: fifo, max_epochs: 2}}
fixed: {fixed}
params:
  consistency_weight: {{loguniform: [0.1, 10.0]}}
"""


def _space(metric: str, fixed: str):
    return parse_space(textwrap.dedent(SPACE.format(metric=metric, fixed=fixed)), "t.yaml")


def test_a_space_sets_the_selection_metric_of_its_trials():
    space = _space("val_psds1", "{compute_val_psds1: true}")
    assert space.fixed["selection_metric"] == "val_psds1"
    assert space.base_config().selection_metric == "val_psds1"
    assert "selection_metric" not in _space("val_macro_f1", "{regularization: l2}").fixed  # the default
    with pytest.raises(SpaceError, match="compute_val_psds1: true"):
        _space("val_psds1", "{regularization: l2}")
    with pytest.raises(SpaceError, match="selection_metric"):
        _space("val_psds1", "{compute_val_psds1: true, selection_metric: val_macro_f1}")


def test_the_config_refuses_a_selection_metric_that_is_not_computed():
    with pytest.raises(ConfigError, match="compute_val_psds=true"):
        apply_overrides(TrainConfig(), {"selection_metric": "val_psds"})
    with pytest.raises(ConfigError, match="choose one of"):
        apply_overrides(TrainConfig(), {"selection_metric": "eval_psds"})
    assert apply_overrides(
        TrainConfig(), {"selection_metric": "val_psds1", "compute_val_psds1": "true"}
    ).compute_val_psds1


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def _selector(metric: str) -> Trainer:
    """Only what Trainer._select reads: config, epoch, best_* and the selected model."""
    trainer = object.__new__(Trainer)
    trainer.config = TrainConfig(
        compute_val_psds=True, compute_val_psds1=True, compute_val_frame_ap=True, selection_metric=metric
    )
    trainer.student = _Model()
    trainer.teacher = None
    trainer.best_epoch, trainer.best_metrics, trainer.best_state = None, {}, None
    return trainer


def test_selection_keeps_the_epoch_best_by_the_selection_metric():
    epochs = [
        {"val_macro_f1": 0.30, "val_psds": 0.20, "val_psds1": 0.10, "val_frame_ap": 0.60},
        {"val_macro_f1": 0.50, "val_psds": float("nan"), "val_psds1": 0.05, "val_frame_ap": 0.50},
        {"val_macro_f1": 0.40, "val_psds": 0.25, "val_psds1": 0.30, "val_frame_ap": float("nan")},
        {"val_macro_f1": 0.45, "val_psds": 0.25, "val_psds1": 0.30, "val_frame_ap": 0.55},  # ties: the earlier
    ]
    expected = {"val_macro_f1": 2, "val_psds": 3, "val_psds1": 3, "val_frame_ap": 1}  # a NaN never wins
    for metric, best in expected.items():
        trainer = _selector(metric)
        for epoch, val in enumerate(epochs, start=1):
            trainer.epoch = epoch
            trainer.student.w.data.fill_(epoch)
            trainer._select(val)
        assert trainer.best_epoch == best, metric
        assert trainer.best_state["w"].item() == best  # the weights of that epoch
        assert trainer.best_metrics == epochs[best - 1]
