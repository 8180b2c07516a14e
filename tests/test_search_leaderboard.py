"""search.rows / search.leaderboard / search.final / search.failures / search.resources: no Ray started."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from search import final as final_stage
from search import leaderboard as lb
from search import rows
from search import summary as summary_module
from search.failures import error_text
from search.resources import ClusterError, derive_resources
from search.rows import TrialRecord, best_of, leaderboard_status, search_frame
from search.space import parse_space

SPACE_TEXT = """
name: lb
metric: [val_macro_f1, val_psds]
num_samples: 4
scheduler: {kind: asha, max_epochs: 3, grace_period: 1}
fixed: {regularization: l2, compute_val_psds: true, rampup_epochs: 1}
params:
  augmentation: {choice: [random, mixup]}
  noise_scale: {loguniform: [0.01, 1.0], when: {augmentation: random}}
  mixup_alpha: {uniform: [0.1, 1.0], when: {augmentation: mixup}}
final: {top_k: 2, seeds: [1, 2, 3], epochs: 3}
"""


@pytest.fixture
def space():
    return parse_space(SPACE_TEXT, "lb.yaml")


# ----------------------------------------------------------------------------- statistics
def test_ci95_by_hand():
    # mean 0.32, sample std 0.02, t_{0.975, 2} = 4.302652729911275 (Student t table: 4.303)
    n, mean, std, low, high = summary_module.mean_std_ci95([0.30, 0.34, 0.32])
    assert n == 3
    assert mean == pytest.approx(0.32)
    assert std == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # = 0.0496827
    assert half == pytest.approx(0.0496827, abs=1e-7)
    assert low == pytest.approx(0.32 - half) and high == pytest.approx(0.32 + half)
    # n = 2: t_{0.975, 1} = 12.7062047361747; values 1 and 3 -> mean 2, std sqrt(2)
    n, mean, std, low, high = summary_module.mean_std_ci95([1.0, 3.0])
    assert (mean, std) == (pytest.approx(2.0), pytest.approx(math.sqrt(2)))
    assert high - mean == pytest.approx(12.7062047361747 * math.sqrt(2) / math.sqrt(2))
    # one value: no spread; NaN values (failed seeds) are left out
    n, mean, std, low, high = summary_module.mean_std_ci95([0.5, float("nan")])
    assert n == 1 and mean == 0.5 and math.isnan(std) and math.isnan(low) and math.isnan(high)
    assert summary_module.mean_std_ci95([])[0] == 0


def test_ci95_is_clipped_to_the_score_range():
    """Two seeds near 0: the t interval (12.7 x std / sqrt 2) crosses 0; a score's interval stops at its bounds."""
    n, mean, std, low, high = summary_module.mean_std_ci95([0.02, 0.10])
    half = 12.7062047361747 * 0.08 / math.sqrt(2) / math.sqrt(2)  # 0.508: the interval reaches -0.448
    assert (low, high) == (pytest.approx(0.06 - half), pytest.approx(0.06 + half)) and low < 0
    n, mean, std, clipped_low, clipped_high = summary_module.mean_std_ci95([0.02, 0.10], summary_module.SCORE_BOUNDS)
    assert (clipped_low, clipped_high) == (0.0, high) and mean == pytest.approx(0.06)
    n, mean, std, low, high = summary_module.mean_std_ci95([0.98, 0.90], summary_module.SCORE_BOUNDS)
    assert high == 1.0 and 0 < low < 0.94
    summary = summary_module.summarize_final(
        pd.DataFrame({"config_id": ["a", "a"], "seed": [1, 2], "status": "COMPLETED", "eval_psds1": [0.02, 0.1]}),
        metrics=("eval_psds1",),
    )
    assert summary.loc[0, "eval_psds1_ci95_low"] == 0.0


def test_summarize_final_groups_by_config_and_skips_failed_seeds():
    final = pd.DataFrame(
        {
            "config_id": ["a", "a", "a", "b", "b"],
            "label": ["A", "A", "A", "B", "B"],
            "rank": [1, 1, 1, 2, 2],
            "search_trial_id": ["t1"] * 3 + ["t2"] * 2,
            "seed": [1, 2, 3, 1, 2],
            "status": ["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "ERROR"],
            "eval_macro_f1": [0.30, 0.34, 0.32, 0.5, float("nan")],
            "eval_psds": [0.5, 0.5, 0.5, 0.6, float("nan")],
        }
    )
    summary = summary_module.summarize_final(final, metrics=("eval_macro_f1", "eval_psds"))
    assert list(summary["config_id"]) == ["a", "b"]
    a, b = summary.iloc[0], summary.iloc[1]
    assert a["n_seeds"] == 3 and a["seeds"] == "1,2,3"
    assert a["eval_macro_f1_mean"] == pytest.approx(0.32)
    assert a["eval_macro_f1_ci95_high"] == pytest.approx(0.32 + 0.0496827, abs=1e-6)
    assert a["eval_psds_std"] == pytest.approx(0.0)
    assert b["n_seeds"] == 1 and b["eval_macro_f1_mean"] == pytest.approx(0.5)
    assert math.isnan(b["eval_macro_f1_ci95_low"])


def test_pareto_front():
    frame = pd.DataFrame({"f1": [0.3, 0.4, 0.35, 0.2, np.nan], "psds": [0.6, 0.5, 0.55, 0.7, 0.9]})
    assert list(rows.pareto_front(frame, ["f1", "psds"], "max")) == [True, True, True, True, False]
    frame = pd.DataFrame({"f1": [0.3, 0.4, 0.3], "psds": [0.5, 0.5, 0.4]})
    assert list(rows.pareto_front(frame, ["f1", "psds"], "max")) == [False, True, False]
    assert list(rows.pareto_front(frame, ["f1", "psds"], "min")) == [False, False, True]


# ----------------------------------------------------------------------------- parquet
def test_atomic_write_metadata_and_roundtrip(tmp_path, space):
    meta = lb.run_metadata(
        space.text,
        "search",
        space.metrics,
        extra={"data": "embedded", "final": {"top_k": 2}},
        versions={"ray": "2.60.0"},
    )
    frame = pd.DataFrame(
        {
            "trial_id": ["x", "y"],
            "val_macro_f1": [0.1, float("nan")],
            "mixed": [1.0, "text"],
            "cnn_filters": ["8,16", "8,16"],
        }
    )
    path = lb.write_parquet_atomic(frame, tmp_path / "search.parquet", meta)
    read = lb.read_metadata(path)
    assert read["space"] == space.text
    assert read["stage"] == "search" and read["metric"] == "val_macro_f1,val_psds"
    assert read["data"] == "embedded" and json.loads(read["final"]) == {"top_k": 2}
    assert json.loads(read["versions"]) == {"ray": "2.60.0"}
    assert read["git_commit"] == lb.git_commit() and read["git_commit"]
    assert read["created"].endswith("+00:00")
    back = lb.read_parquet(path)
    assert list(back["trial_id"]) == ["x", "y"] and math.isnan(back["val_macro_f1"][1])
    assert list(back["mixed"]) == ["1.0", "text"]  # mixed types stored as text
    assert [p.name for p in tmp_path.iterdir()] == ["search.parquet"]  # no temporary left


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "final.parquet"
    lb.write_parquet_atomic(pd.DataFrame({"a": [1]}), path, {"stage": "final"})

    def broken(table, where, **kwargs):
        Path(where).write_bytes(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        lb.write_parquet_atomic(pd.DataFrame({"a": [1, 2, 3]}), path, {"stage": "final"})
    monkeypatch.undo()
    assert list(lb.read_parquet(path)["a"]) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.parquet"]


def test_git_commit_unknown_outside_a_repository(tmp_path):
    assert lb.git_commit(tmp_path) == "unknown"


def test_package_versions_include_search_libraries():
    versions = lb.package_versions()
    for name in ("ray", "optuna", "torch", "python"):
        assert versions[name] and versions[name] != "missing"


# ----------------------------------------------------------------------------- search rows
def _history(values_f1, values_psds, seconds=2.0):
    n = len(values_f1)
    return pd.DataFrame(
        {
            "epoch": range(1, n + 1),
            "training_iteration": range(1, n + 1),
            "val_macro_f1": values_f1,
            "val_psds": values_psds,
            "time_total_s": [seconds * (i + 1) for i in range(n)],
        }
    )


def test_search_frame_rows_status_best_and_columns(tmp_path, space):
    (tmp_path / "t3").mkdir()
    (tmp_path / "t3" / "failure.json").write_text(
        json.dumps({"type": "TrainingDiverged", "message": "loss nan at step 4"})
    )
    records = [
        TrialRecord(
            "t1",
            "TERMINATED",
            {"augmentation": "random", "noise_scale": 0.1, "regularization": "l2", "epochs": 3},
            _history([0.2, 0.5, 0.4], [0.1, 0.3, 0.35]),
            None,
            str(tmp_path / "t1"),
        ),
        TrialRecord(
            "t2",
            "TERMINATED",
            {"augmentation": "mixup", "mixup_alpha": 0.3, "regularization": "l2", "epochs": 3},
            _history([0.3], [0.6]),
            None,
            str(tmp_path / "t2"),
        ),
        TrialRecord(
            "t3",
            "ERROR",
            {"augmentation": "random", "noise_scale": 9.0, "regularization": "l2", "epochs": 3},
            _history([0.1], [0.0]),
            error_text(tmp_path / "t3", RuntimeError("ray wrapper")),
            str(tmp_path / "t3"),
        ),
        TrialRecord(
            "t4",
            "PENDING",
            {"augmentation": "mixup", "mixup_alpha": 0.9, "epochs": 3},
            pd.DataFrame(),
            None,
            str(tmp_path / "t4"),
        ),
    ]
    frame = search_frame(records, space)
    assert list(frame["trial_id"]) == ["t1", "t2", "t3", "t4"]  # sorted by selection value, missing last
    by_id = frame.set_index("trial_id")
    assert by_id.loc["t1", "status"] == "COMPLETED"
    assert by_id.loc["t2", "status"] == "EARLY_STOPPED"
    assert by_id.loc["t3", "status"] == "ERROR"
    assert by_id.loc["t4", "status"] == "NOT_STARTED"
    assert by_id.loc["t1", "val_macro_f1"] == 0.5 and by_id.loc["t1", "best_epoch"] == 2
    assert by_id.loc["t1", "val_psds"] == 0.35  # best over epochs, each metric on its own
    assert by_id.loc["t1", "selection_value"] == 0.5
    assert by_id.loc["t1", "epochs_run"] == 3 and by_id.loc["t1", "wall_seconds"] == 6.0
    # every searched parameter has its column, NaN where a condition left it out
    assert by_id.loc["t1", "noise_scale"] == 0.1 and pd.isna(by_id.loc["t1", "mixup_alpha"])
    assert by_id.loc["t2", "mixup_alpha"] == 0.3 and pd.isna(by_id.loc["t2", "noise_scale"])
    assert by_id.loc["t3", "error"] == "TrainingDiverged: loss nan at step 4"
    # two metrics -> Pareto flag: t1 (0.5, 0.35) and t2 (0.3, 0.6) are both non-dominated
    assert bool(by_id.loc["t1", "pareto"]) and bool(by_id.loc["t2", "pareto"]) and not bool(by_id.loc["t3", "pareto"])
    assert json.loads(by_id.loc["t2", "config_json"])["mixup_alpha"] == 0.3

    # final stage selection + plan from these rows
    top = final_stage.select_top(frame, space)
    assert list(top["trial_id"]) == ["t1", "t2"]
    points = final_stage.final_points(top, space)
    assert len(points) == 6
    assert [(p["_rank"], p["seed"]) for p in points] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert all(p["epochs"] == 3 and p["_evaluate"] for p in points)
    assert points[0]["noise_scale"] == 0.1 and points[0]["_config_id"] == by_id.loc["t1", "config_id"]


def test_error_text_falls_back_to_the_last_line_of_rays_error(tmp_path):
    error = RuntimeError("Traceback (most recent call last):\n  File x\nValueError: the 'weak' part has 8 clips\n")
    assert error_text(tmp_path, error) == "ValueError: the 'weak' part has 8 clips"
    assert error_text(tmp_path, None) is None


def test_best_of_min_mode_and_status_mapping():
    history = _history([0.5, 0.2, 0.3], [0, 0, 0])
    assert best_of(history, "val_macro_f1", "min") == (0.2, 2)
    assert math.isnan(best_of(pd.DataFrame(), "val_macro_f1", "max")[0])
    assert leaderboard_status("TERMINATED", 3, 3) == "COMPLETED"
    assert leaderboard_status("TERMINATED", 1, 3) == "EARLY_STOPPED"
    assert leaderboard_status("RUNNING", 1, 3) == "INTERRUPTED"
    assert leaderboard_status("ERROR", 0, 3) == "ERROR"


# ----------------------------------------------------------------------------- final.parquet
def test_final_rows_upsert_and_done_pairs(tmp_path, space):
    path = tmp_path / "final.parquet"
    config = {
        "augmentation": "random",
        "noise_scale": 0.1,
        "seed": 2,
        "epochs": 3,
        "_config_id": "abc",
        "_label": "",
        "_rank": 1,
        "_search_trial_id": "t1",
        "_evaluate": True,
    }
    trial_dir = tmp_path / "trial"
    trial_dir.mkdir()
    (trial_dir / "eval.json").write_text(
        json.dumps({"eval_per_class_f1": {"Dog": 0.5}, "metric_versions": {"sed_eval": "0.2.1"}})
    )
    result = {
        "epoch": 3,
        "time_total_s": 12.0,
        "selected_val_macro_f1": 0.4,
        "selected_val_psds": 0.3,
        "eval_macro_f1": 0.25,
        "eval_psds": 0.5,
        "eval_psds_ct": 0.4,
        "eval_psds_macro": 0.45,
        "model_epoch": 2,
    }
    row = rows.final_row(config, result, "COMPLETED", None, "f1", trial_dir, list(space.params))
    assert row["config_id"] == "abc" and row["seed"] == 2 and row["rank"] == 1
    assert row["val_macro_f1"] == 0.4 and row["eval_psds_macro"] == 0.45 and math.isnan(row["eval_micro_f1"])
    assert json.loads(row["eval_per_class_f1"]) == {"Dog": 0.5}
    assert row["mixup_alpha"] is None and row["noise_scale"] == 0.1
    meta = {"stage": "final", "space": space.text}
    rows.upsert_final_row(path, row, meta)
    rows.upsert_final_row(path, {**row, "seed": 1}, meta)
    rows.upsert_final_row(path, {**row, "eval_macro_f1": 0.3}, meta)  # same pair: replaced
    frame = lb.read_parquet(path)
    assert list(frame["seed"]) == [1, 2]
    assert frame.set_index("seed").loc[2, "eval_macro_f1"] == 0.3
    assert final_stage.done_pairs(path) == {("abc", 1), ("abc", 2)}
    assert lb.read_metadata(path)["space"] == space.text


def test_plan_experiment_restores_or_starts_new(tmp_path):
    wanted = {("a", 1), ("a", 2)}
    name, restore = final_stage.plan_experiment(tmp_path, wanted, lambda p: True)
    assert (name, restore) == ("final", False)
    (tmp_path / "final").mkdir()
    # interrupted: same pairs still wanted and restorable -> restore
    assert final_stage.plan_experiment(tmp_path, {("a", 2)}, lambda p: True) == ("final", True)
    # not restorable, or new pairs -> a new experiment for what is missing
    assert final_stage.plan_experiment(tmp_path, {("a", 2)}, lambda p: False) == ("final-2", False)
    assert final_stage.plan_experiment(tmp_path, {("b", 1)}, lambda p: True) == ("final-3", False)
    state = json.loads((tmp_path / "final_state.json").read_text())
    assert [e["name"] for e in state["experiments"]] == ["final", "final-2", "final-3"]


# ----------------------------------------------------------------------------- resources
def test_derive_resources(space):
    r = derive_resources(space, {"CPU": 4.0})
    assert (r.cpu, r.gpu, r.max_concurrent) == (1.0, 0.0, 4)  # gpu auto on a CPU cluster -> 0
    r = derive_resources(space, {"CPU": 8.0, "GPU": 1.0})
    assert (r.gpu, r.max_concurrent) == (1.0, 1)  # auto: the measured default of 1 trial per GPU (graph step)
    gpu_space = parse_space(SPACE_TEXT + "resources: {cpu: 1, gpu: 0.25}\nmax_concurrent: 2\n", "gpu.yaml")
    assert derive_resources(gpu_space, {"CPU": 2.0, "GPU": 1.0}).gpu == 0.25
    with pytest.raises(ClusterError, match=r"gpu.yaml: resources\.gpu=0\.25 but the Ray cluster has no GPU.*gpu: auto"):
        derive_resources(gpu_space, {"CPU": 2.0})
    big = parse_space(SPACE_TEXT + "resources: {cpu: 4}\n", "big.yaml")
    with pytest.raises(ClusterError, match=r"resources\.cpu=4 but no node of the Ray cluster has that many CPUs"):
        derive_resources(big, {"CPU": 2.0})
    assert isinstance(ClusterError("x"), ValueError)
    assert os.environ.get("RAY_AUTH_MODE") == "disabled"  # set by conftest for every test


def test_error_text_names_a_dead_worker_over_an_earlier_attempts_failure_json(tmp_path):
    trial = tmp_path / "trial"
    trial.mkdir()
    # attempt 1 raised (the trainable wrote failure.json), attempt 2's worker was killed
    (trial / "failure.json").write_text(json.dumps({"type": "ValueError", "message": "bad batch"}))
    (trial / "error.txt").write_text(
        "Failure # 1 (occurred at 2026-12-01_11-30-05)\nTraceback ...\nValueError: bad batch\n\n"
        "Failure # 2 (occurred at 2026-12-01_11-30-11)\n"
        "The actor died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc\n\tpid: 15367\n"
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR "
        "Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file. "
        "Some common causes include: (1) the process was killed by the OOM killer\n"
    )
    assert error_text(trial, None) == (
        "WorkerDied: the trial's worker process (pid 15367) died; exit type SYSTEM_ERROR; "
        "Worker unexpectedly exits with a connection error code 2. End of file."
    )
    # the last failure is the exception: failure.json's type and message
    (trial / "error.txt").write_text("Failure # 1\nTraceback ...\nsed.trainer.ValueError: bad batch\n")
    assert error_text(trial, None) == "ValueError: bad batch"
    # without failure.json: Ray's last line, its wrapper removed
    (trial / "failure.json").unlink()
    assert error_text(trial, "ray::ImplicitFunc.train()\nRayTaskError(KeyError): 'x'") == "KeyError: 'x'"


def test_upsert_final_row_warns_nothing_when_a_column_is_all_missing_on_one_side(tmp_path):
    """pandas 2.x warned (FutureWarning) on every final trial: concat with a column all-NA on one side."""
    import warnings

    path = tmp_path / "final.parquet"
    row = {"config_id": "a", "seed": 1, "rank": 1, "error": None, "noise_scale": None, "epsilon": 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows.upsert_final_row(path, row, {})
        frame = rows.upsert_final_row(path, {**row, "seed": 2, "noise_scale": 0.3, "epsilon": None}, {})
    assert frame["noise_scale"].dtype == float and frame["epsilon"].tolist()[0] == 0.5
    assert math.isnan(frame["epsilon"].tolist()[1]) and frame["seed"].tolist() == [1, 2]
