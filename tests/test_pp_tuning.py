"""Post-processing tuned per class on validation (issue 24): never worse on validation, the public-eval files
untouched, and the values stored in final.parquet reproduce the tuned public-eval numbers through sed.score."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sed.eval.classwise import decode_tables, event_f1_of_tables, psds_of
from sed.eval.metrics import event_f1
from sed.eval.postprocess import decode_events
from sed.eval.pp_tuning import read_score_set
from sed.score import main as score_main
from sed.train import main as train_main
from sed.tune_postprocess import main as tune_main

TINY = [
    "cnn_filters=4,8,8,8,8,8,8",
    "rnn_hidden=8",
    "batch_size=8",
    "rampup_epochs=1",
    "num_threads=1",
    "embedded_size=tiny",
    "median_window=5",
]


@pytest.fixture(scope="module")
def run(tiny_data_root, session_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pp") / "run"
    args = [
        "--preset",
        "none",
        "--epochs",
        "2",
        "--data",
        str(tiny_data_root),
        "--cache",
        str(session_cache),
        "--out",
        str(out),
    ]
    for item in TINY:
        args += ["--set", item]
    assert train_main(args) == 0
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_classwise_decoding_equals_the_runs_decoder_at_one_window_and_threshold(run):
    """At one window and threshold for every class the per-class path gives the run's own detections."""
    scores = read_score_set(run / "validation")
    probs = np.stack([scores.tables[c][scores.labels].to_numpy() for c in scores.ids])  # tiny clips: all 10 s
    mine = decode_tables(scores, dict.fromkeys(scores.labels, 5), dict.fromkeys(scores.labels, 0.3))
    theirs = decode_events(
        probs,
        scores.filenames,
        scores.labels,
        threshold=0.3,
        median_window=5,
        frame_step=scores.frame_step,
        durations=scores.durations,
    )
    pd.testing.assert_frame_equal(mine, theirs)


def test_tuned_on_validation_is_never_worse_there_and_public_eval_files_stay(run):
    before = _digests(run / "public_eval")
    metrics_before = json.loads((run / "metrics.json").read_text())
    assert tune_main([str(run)]) == 0
    assert _digests(run / "public_eval") == before  # nothing of the run's public-eval files changed
    record = json.loads((run / "postprocess" / "postprocess.json").read_text())
    tuned = record["tuned"]
    assert tuned["median_window"] == 5 and tuned["threshold"] == 0.5
    for metric, values in tuned["validation"].items():
        if values["untuned"] is not None:
            assert values["tuned"] >= values["untuned"], metric
    # the untuned validation F1 is the run's own (metrics.json, from the model's probabilities)
    assert tuned["validation"]["macro_f1"]["untuned"] == pytest.approx(
        metrics_before["validation_desed"]["validation_macro_f1"], abs=1e-9
    )
    # recomputed independently: sed_eval on the tuned detections vs the run's own validation detections
    scores = read_score_set(run / "validation")
    tuned_f1 = event_f1_of_tables(scores, tuned["windows_f1"], tuned["thresholds_f1"])
    detections = pd.read_csv(run / "validation" / "detections.tsv", sep="\t")
    untuned_f1 = event_f1(scores.reference, detections, scores.filenames, scores.labels)
    assert tuned_f1["macro_f1"] >= untuned_f1["macro_f1"]
    psds1, _ = psds_of(scores, tuned["windows_psds1"], "psds1")
    assert psds1 == pytest.approx(tuned["validation"]["psds1"]["tuned"], abs=1e-12)
    # metrics.json carries the record; the tuned detections are written beside, not over, the run's
    assert json.loads((run / "metrics.json").read_text())["postprocess"]["public_eval"] is not None
    assert (run / "postprocess" / "public_eval" / "detections.tsv").is_file()
    # a choice was made per class: every class has a window and a threshold
    assert set(tuned["windows_f1"]) == set(tuned["thresholds_f1"]) == set(scores.labels)


def test_leaderboard_values_reproduce_the_tuned_numbers_through_sed_score(run, tmp_path):
    """A final.parquet row tuned by search.postprocess; its pp_* columns given to sed.score give its *_tuned."""
    from search import leaderboard as lb
    from search.postprocess import main as pp_main

    exp = tmp_path / "exp"
    trial = exp / "final" / "trial_a"
    shutil.copytree(run, trial / "outputs", ignore=shutil.ignore_patterns("postprocess", "checkpoint", "tensorboard"))
    (trial / "outputs" / "metrics.json").unlink()  # a final trial has best_model.pt, no metrics.json
    row = {
        "config_id": "a",
        "seed": 1,
        "rank": 1,
        "status": "COMPLETED",
        "control": False,
        "eval_macro_f1": 0.1,
        "eval_psds1": 0.1,
        "eval_psds2": 0.1,
        "trial_dir": str(trial),
    }
    lb.write_parquet_atomic(
        pd.DataFrame([row, {**row, "seed": 2, "status": "ERROR", "trial_dir": None}]),
        exp / lb.FINAL_FILE,
        {"stage": "final"},
    )
    assert pp_main([str(exp)]) == 0
    final = lb.read_parquet(exp / lb.FINAL_FILE)
    assert lb.read_metadata(exp / lb.FINAL_FILE)["stage"] == "final"  # metadata kept
    tuned = final.iloc[0]
    assert pd.isna(final.iloc[1]["eval_macro_f1_tuned"])  # a failed seed is not tuned
    assert tuned["pp_val_macro_f1_tuned"] >= tuned["pp_val_macro_f1"]
    public = trial / "outputs" / "public_eval"
    common = [
        "--ground-truth",
        str(public / "ground_truth.tsv"),
        "--durations",
        str(public / "durations.tsv"),
        "--scores",
        str(public / "scores" / "raw"),
        "--out",
        str(tmp_path / "s.json"),
    ]
    assert (
        score_main(
            [*common, "--median-window", tuned["pp_windows_f1"], "--class-thresholds", tuned["pp_thresholds_f1"]]
        )
        == 0
    )
    assert json.loads((tmp_path / "s.json").read_text())["macro_f1"] == tuned["eval_macro_f1_tuned"]
    for metric in ("psds1", "psds2"):
        assert score_main([*common, "--median-window", tuned[f"pp_windows_{metric}"]]) == 0
        value = json.loads((tmp_path / "s.json").read_text())[metric]
        expected = tuned[f"eval_{metric}_tuned"]
        assert (value is None and math.isnan(expected)) or value == expected, metric


def test_runs_tuned_in_parallel_processes_give_the_numbers_of_one_after_the_other(run, tmp_path):
    """tune_final with two workers (each run in its own `python -m sed.tune_postprocess` process) fills the same
    columns as one after the other in this process; a run that fails names its folder."""
    from search import leaderboard as lb
    from search.postprocess import PP_COLUMNS, TUNED_COLUMNS, tune_final

    frames = {}
    for workers in (1, 2):
        rows = []
        for seed in (1, 2)[:workers]:
            trial = tmp_path / f"w{workers}" / f"trial_{seed}"
            shutil.copytree(run, trial / "outputs", ignore=shutil.ignore_patterns("postprocess", "checkpoint"))
            rows.append({"config_id": "a", "seed": seed, "status": "COMPLETED", "trial_dir": str(trial)})
        path = tmp_path / f"w{workers}" / lb.FINAL_FILE
        lb.write_parquet_atomic(pd.DataFrame(rows), path, {"stage": "final"})
        frames[workers] = tune_final(path, workers=workers)
        assert (Path(rows[-1]["trial_dir"]) / "outputs" / "postprocess" / "postprocess.json").is_file()
    columns = [c for c in (*TUNED_COLUMNS, *PP_COLUMNS) if c != "pp_seconds"]
    assert frames[2][columns].notna().all().all()
    for row in range(2):  # the same run, copied: the same numbers as in this process
        pd.testing.assert_series_equal(frames[1][columns].iloc[0], frames[2][columns].iloc[row], check_names=False)

    final = lb.read_parquet(tmp_path / "w2" / lb.FINAL_FILE)
    final.loc[1, "pp_seconds"] = math.nan  # trial_2 to be tuned again, alone, in a process of its own
    lb.write_parquet_atomic(final, tmp_path / "w2" / lb.FINAL_FILE, {"stage": "final"})
    (tmp_path / "w2" / "trial_2" / "outputs" / "validation" / "durations.tsv").write_text("not a table\n")
    with pytest.raises(RuntimeError, match=r"post-processing of .*trial_2.outputs failed \(exit 2\)"):
        tune_final(tmp_path / "w2" / lb.FINAL_FILE, workers=2)


def test_a_tuning_process_loads_no_torch_and_records_the_metric_versions(run, tmp_path):
    """`python -m sed.tune_postprocess` (one per final run, search.postprocess) runs no torch code: it does not
    import torch (2 s or more of its life), and its record keeps the metric packages' versions without the
    kernel path, which only torch's own computations have."""
    folder = tmp_path / "outputs"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("postprocess", "checkpoint", "best_model.pt"))
    probe = (
        "import sys; from sed.tune_postprocess import main; code = main(sys.argv[1:]); "
        "print('torch' in sys.modules); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(folder), "--median-window", "5", "--threshold", "0.5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    versions = json.loads((folder / "postprocess" / "postprocess.json").read_text())["versions"]
    assert versions["sed_scores_eval"] == importlib.metadata.version("sed_scores_eval")
    assert versions["python"] == platform.python_version() and "torch_cpu_capability" not in versions


def test_sed_score_refuses_per_class_values_without_raw_scores_or_a_class(run, tmp_path, capsys):
    public = run / "public_eval"
    common = ["--ground-truth", str(public / "ground_truth.tsv"), "--durations", str(public / "durations.tsv")]
    assert score_main([*common, "--detections", str(public / "detections.tsv"), "--median-window", '{"Dog": 3}']) == 2
    assert "give --scores" in capsys.readouterr().err
    assert score_main([*common, "--scores", str(public / "scores" / "raw"), "--median-window", '{"Dog": 3}']) == 2
    assert "no value for class 'Alarm_bell_ringing'" in capsys.readouterr().err


def test_space_key_final_postprocess_is_checked_at_parse_time():
    from search.space import SpaceError, parse_space

    text = """
name: pp
num_samples: 2
scheduler: {kind: asha, max_epochs: 2, grace_period: 1}
fixed: {cnn_filters: [4, 8], rnn_hidden: 4, rampup_epochs: 1}
params:
  augmentation: {choice: [random, mixup]}
final: {top_k: 1, seeds: [1, 2], epochs: 2, control: none, postprocess: VALUE}
"""
    assert parse_space(text.replace("VALUE", "true"), "pp.yaml").final.postprocess is True
    assert parse_space(text.replace(", postprocess: VALUE", ""), "pp.yaml").final.postprocess is False
    with pytest.raises(SpaceError, match=r"pp.yaml.*final.postprocess.*expected true or false, got 'yes please'"):
        parse_space(text.replace("VALUE", "yes please"), "pp.yaml")
    demo = Path(__file__).resolve().parents[1] / "spaces" / "demo.yaml"
    assert parse_space(demo.read_text(), str(demo)).final.postprocess is False  # off in the demo: its 10 minutes


def test_metrics_json_has_the_runs_compute(run):
    report = json.loads((run / "metrics.json").read_text())
    assert report["energy_kwh"] > 0 and report["energy_country"] == "FRA"
    assert "cpu: " in report["energy_source"] and (
        "estimated" in report["energy_source"] or "measured" in report["energy_source"]
    )
    assert report["macs_per_10s"] > 0 and report["train_seconds"] > 0
    assert report["train_steps"] == report["history"][-1]["step"] > 0
