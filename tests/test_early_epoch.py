"""The final stage's note on runs that kept an early epoch (a seed that barely learned)."""

from __future__ import annotations

import pandas as pd
from test_control import _summary, space_with

from search import leaderboard as lb
from search.console import print_summary
from search.space import CONTROL_ID
from search.summary import early_epoch_notes


def _final() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "config_id": ["a", "a", "a", "a", CONTROL_ID, CONTROL_ID, CONTROL_ID],
            "label": ["A", "A", "A", "A", "control: no augmentation", "control: no augmentation", ""],
            "control": [False, False, False, False, True, True, True],
            "seed": [1, 2, 3, 4, 1, 2, 3],
            "status": ["COMPLETED", "COMPLETED", "ERROR", "COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED"],
            # kept: 24 of 24 (late), 6 of 24 (= a quarter: early), a failed run, 7 of 24 (not early),
            # 1 of 24 (early), 0 = unknown, 1 of 3 (too short a run to say)
            "model_epoch": [24.0, 6.0, 1.0, 7.0, 1.0, 0.0, 1.0],
            "epochs_run": [24, 24, 1, 24, 24, 24, 3],
            "eval_macro_f1": [0.3, 0.12, float("nan"), 0.2, 0.0, 0.1, 0.0],
            "eval_psds": [0.4, 0.2, float("nan"), 0.3, 0.066, 0.1, 0.0],
        }
    )


def test_runs_that_kept_an_early_epoch_get_a_note_with_their_scores() -> None:
    notes = early_epoch_notes(_final(), "val_frame_ap")
    assert notes == [
        "note: the control, seed 1, kept epoch 1 of 24 (its best val_frame_ap on validation came that early: "
        "the seed barely learned): public-eval F1 at the threshold 0.000, PSDS 0.066",
        "note: A, seed 2, kept epoch 6 of 24 (its best val_frame_ap on validation came that early: "
        "the seed barely learned): public-eval F1 at the threshold 0.120, PSDS 0.200",
    ]
    with_tuned = _final().assign(eval_macro_f1_tuned=[0.3, 0.15, float("nan"), 0.2, 0.059, 0.1, 0.0])
    assert early_epoch_notes(with_tuned, "val_frame_ap")[0].endswith("PSDS 0.066, tuned F1 0.059")
    # a row without a label is named by its config id
    unlabelled = _final().assign(label=[float("nan")] * 4 + ["control: no augmentation"] * 2 + [""])
    assert early_epoch_notes(unlabelled, "val_frame_ap")[1].startswith("note: a, seed 2, kept epoch 6 of 24")
    # rows written before model_epoch existed, an empty or absent final stage: no notes
    assert early_epoch_notes(_final().drop(columns=["model_epoch"]), "val_macro_f1") == []
    assert early_epoch_notes(pd.DataFrame(), "val_macro_f1") == []
    assert early_epoch_notes(None, "val_macro_f1") == []


def test_the_summary_prints_the_note(tmp_path, capsys) -> None:
    space = space_with("none")
    search = pd.DataFrame({"trial_id": ["t1"], "status": ["COMPLETED"], "val_macro_f1": [0.4]})
    lb.write_parquet_atomic(_final(), tmp_path / lb.FINAL_FILE, {})
    print_summary(space, search, _summary([0.3, 0.12, 0.2], [0.0, 0.1]), tmp_path)
    out = capsys.readouterr().out
    assert "  note: the control, seed 1, kept epoch 1 of 24 (its best val_macro_f1 on validation" in out
    assert "note: A, seed 1" not in out and "seed 4" not in out
