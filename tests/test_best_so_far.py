"""The searcher and ASHA are told the number the leaderboard ranks on: the best epoch so far."""

from __future__ import annotations

from pathlib import Path

from search.space import load_space
from search.trainable import with_best_so_far

REPO = Path(__file__).resolve().parents[1]


def test_best_so_far_is_the_maximum_over_the_epochs_reported():
    history = [
        {"epoch": 1, "val_macro_f1": 0.20, "val_psds": None},
        {"epoch": 2, "val_macro_f1": 0.35, "val_psds": None},
        {"epoch": 3, "val_macro_f1": 0.30, "val_psds": None},
    ]
    out = with_best_so_far({"val_macro_f1": 0.30, "epoch": 3}, history)
    assert out["val_macro_f1"] == 0.30  # the epoch's own value is kept for the curves
    assert out["best_val_macro_f1"] == 0.35  # what Optuna and ASHA read
    assert "best_val_psds" not in out  # not computed in this run: nothing invented
    assert with_best_so_far({}, history[:1])["best_val_macro_f1"] == 0.20


def test_the_spaces_tell_tune_the_best_so_far_metric():
    demo = load_space(REPO / "spaces" / "demo.yaml")
    assert demo.metric == "val_frame_ap" and demo.tune_metric == "best_val_frame_ap"
    pareto = load_space(REPO / "spaces" / "all.yaml")
    assert pareto.tune_metric == "best_val_macro_f1"
