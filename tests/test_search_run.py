"""End to end: `python -m search.run` on the embedded tiny data, killed, stopped, resumed.

One flow (to share the cost of starting Ray and building the data), on
tests/spaces/tiny.yaml (4 TPE trials, ASHA over 2 epochs, final stage: the best
config x 3 seeds):

1. start the search in a subprocess; once a trial has finished (and Ray has
   copied its records to the storage folder), SIGKILL the driver by its PID
   (only the driver: the Ray processes it had started must exit by
   themselves, which step 3 checks);
2. `--resume`: the search continues; once a final-stage trial has finished,
   SIGTERM the driver: it stops gracefully (exit 130) and prints the resume
   command;
3. run that command: it finishes. Every trial finished before an interruption
   is kept as it was (search trials: same per-epoch records; final stage: the
   (config, seed) pair already in final.parquet is not rerun); both Parquet
   leaderboards have the required columns and metadata; every trial has
   TensorBoard scalars and an HParams session; the Optuna study in the
   experiment's journal holds exactly the leaderboard's trials (none
   duplicated, none left RUNNING); report.html is written; no process of the
   killed run is still alive;
4. `--resume` once more: nothing left to do, Ray is not even started.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from procs import alive, descendants, kill_all, output_lines, snapshot

from search import leaderboard as lb
from search.space import load_space

pytestmark = pytest.mark.slow  # Ray end-to-end / learning: the inner loop runs -m "not slow"

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "tests" / "spaces" / "tiny.yaml"
SEARCH_COLUMNS = [
    "trial_id",
    "status",
    "error",
    "augmentation",
    "locations",
    "noise_scale",
    "epsilon",
    "mixup_alpha",
    "consistency_weight",
    "regularization",
    "val_macro_f1",
    "val_psds",
    "epochs_run",
    "best_epoch",
    "wall_seconds",
]
FINAL_COLUMNS = [
    "config_id",
    "seed",
    "augmentation",
    "consistency_weight",
    "val_macro_f1",
    "eval_macro_f1",
    "eval_psds",
    "eval_psds_ct",
    "eval_psds_macro",
    "status",
]


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float, lines: list[str]) -> re.Match:
    regex = re.compile(pattern)
    for line in output_lines(proc, timeout, lines):
        match = regex.search(line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not seen in time; output:\n{''.join(lines)}")


def _kill_driver(proc: subprocess.Popen) -> dict[int, str]:
    """SIGKILL the driver only (as a crash would); returns the Ray processes it had started,
    with their start times, which must then exit by themselves."""
    below = snapshot(descendants(proc.pid))
    proc.kill()
    proc.wait(timeout=30)
    return below


def _kill_hard(proc: subprocess.Popen) -> None:
    """Cleanup after a failed step: SIGKILL the driver and every process below it, by PID."""
    below = descendants(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    kill_all(below)


def _event_tags(directory: Path) -> tuple[set[str], set[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory))
    acc.Reload()
    try:
        hparams = set(acc.PluginTagToContent("hparams"))
    except KeyError:
        hparams = set()
    return set(acc.Tags().get("scalars", [])), hparams


@pytest.mark.timeout(500)
def _recorded_as_ended(exp: Path, trial_id: str) -> bool:
    """Whether Ray's experiment state (what --resume restores) already holds the trial as ended: killed
    before that snapshot, the resume restores the trial from its checkpoint and runs it again."""
    for path in exp.glob("experiment_state-*.json"):
        try:
            state = json.loads(path.read_text())
            trials = [json.loads(entry[0]) for entry in state.get("trial_data", [])]
        except (OSError, ValueError, TypeError, IndexError):
            continue  # being written
        if any(t.get("trial_id") == trial_id and t.get("status") == "TERMINATED" for t in trials):
            return True
    return False


def test_search_kill_stop_resume_leaderboards_tensorboard(tmp_path):
    out = tmp_path / "results"
    exp = out / "tiny"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    space_text = SPACE.read_text().replace("track_energy: false", "track_energy: true")  # step 3 reads the energy
    assert "track_energy: true" in space_text
    space = tmp_path / "tiny.yaml"
    space.write_text(space_text)
    # --verbose: the per-epoch lines on the console too (step 1 counts them)
    cmd = [sys.executable, "-m", "search.run", "--space", str(space), "--out", str(out), "--verbose"]
    resume = [sys.executable, "-m", "search.run", "--resume", "--out", str(out), "--name", "tiny"]

    # ---- 1. SIGKILL mid-search
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        first = _read_until(proc, r"\[search\] (\w+) (done|stopped by the scheduler)", 240, lines).group(1)
        # Ray copies its driver-side records (progress.csv, experiment state) to the storage
        # folder at each state snapshot; kill once the finished trial's records are there
        epochs = len(re.findall(rf"\[search\] {first} epoch", "".join(lines)))
        progress = exp / f"trial_{first}" / "progress.csv"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (
                progress.is_file()
                and len(progress.read_text().strip().splitlines()) == epochs + 1
                and _recorded_as_ended(exp, first)
            ):
                break
            time.sleep(0.2)
        orphans = _kill_driver(proc)
    finally:
        if proc.poll() is None:
            _kill_hard(proc)
    progress_before = {first: progress.read_text()}
    assert len(progress_before[first].strip().splitlines()) == epochs + 1
    assert not (exp / "search.parquet").exists()  # the crash left no leaderboard, only Ray's state
    # a kill can land while Ray copies its state file into the experiment folder (seen once in CI):
    # cut it short as such a kill does; --resume mends it from Ray's local copy (search.ray_state)
    state = max(exp.glob("experiment_state-*.json"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    # a new run with the same name is refused, pointing at --resume
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already exists: add --resume" in again.stderr
    assert "Traceback" not in again.stderr

    # ---- 2. resume; SIGTERM once a final-stage trial has finished
    proc = subprocess.Popen(resume, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        first_final = _read_until(proc, r"\[final\] (\w+) done", 300, lines).group(1)
        stopped = snapshot(descendants(proc.pid))
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            _kill_hard(proc)
    output = "".join(lines)
    assert proc.returncode == 130, output
    assert f"sedtune: {state.name} in {exp} was cut short" in output and "mended from Ray's local copy" in output
    match = re.search(r"Resume with:\n\s+(.+)", output)
    assert match, output
    resume_cmd = shlex.split(match.group(1))
    # the graceful stop shut Ray down: nothing it had started is left running
    deadline = time.monotonic() + 30
    while alive(stopped) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(stopped) >= 3 and not alive(stopped), f"left running after SIGTERM: {sorted(alive(stopped))}"
    assert resume_cmd == resume
    final_before = lb.read_parquet(exp / "final.parquet")
    assert first_final in set(final_before["trial_id"])
    assert len(final_before) < 3

    # ---- 3. resume to the end
    done = subprocess.run(resume_cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== final stage: public evaluation set" in done.stdout

    loaded = load_space(space)
    search = lb.read_parquet(exp / "search.parquet")
    assert len(search) == loaded.num_samples == 4
    assert set(search["status"]) <= {"COMPLETED", "EARLY_STOPPED"}, search[["trial_id", "status", "error"]]
    for column in SEARCH_COLUMNS:
        assert column in search.columns, column
    for trial_id, progress in progress_before.items():
        row = search.set_index("trial_id").loc[trial_id]
        assert (Path(row["trial_dir"]) / "progress.csv").read_text() == progress, f"{trial_id} was rerun"
    assert search["epochs_run"].between(1, 2).all()
    assert search["val_macro_f1"].between(0, 1).all()
    # conditionals: a parameter is set exactly when its condition holds
    for row in search.itertuples():
        assert (not pd.isna(row.noise_scale)) == (row.augmentation == "random")
        assert (not pd.isna(row.epsilon)) == (row.augmentation == "vat")
        assert (not pd.isna(row.mixup_alpha)) == (row.augmentation == "mixup")
    # the Optuna study (OUT/NAME/optuna.journal) survived the SIGKILL and the resume: its finished
    # trials are exactly the leaderboard's (a suggestion the killed driver never ran is FAIL, none RUNNING)
    import optuna

    from search.study_storage import JOURNAL_FILE, open_storage

    assert f"optuna-dashboard {exp / JOURNAL_FILE}" in done.stdout  # the live view of the default journal
    study = optuna.load_study(study_name="tiny", storage=open_storage(str(exp / JOURNAL_FILE)))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["ray_trial_id"] for t in complete) == sorted(search["trial_id"])
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    by_id = search.set_index("trial_id")["selection_value"]
    assert all(t.value == pytest.approx(by_id[t.user_attrs["ray_trial_id"]]) for t in complete)
    assert (exp / "report.html").is_file()  # written at the end of the resumed run
    meta = lb.read_metadata(exp / "search.parquet")
    assert meta["space"] == space_text
    assert meta["git_commit"] == lb.git_commit()
    versions = json.loads(meta["versions"])
    for name in ("ray", "optuna", "torch", "sed_eval", "psds_eval", "torch_cpu_capability"):
        assert versions.get(name) not in (None, "missing"), name
    assert versions["python"] == platform.python_version()  # the driver runs on this interpreter
    assert meta["created"] and meta["stage"] == "search"

    # final stage: the best config x 3 seeds, scored on public_eval; the pair done
    # before the SIGTERM was not rerun
    final = lb.read_parquet(exp / "final.parquet")
    assert sorted(final["seed"]) == [1, 2, 3]
    for column in FINAL_COLUMNS:
        assert column in final.columns, column
    assert (final["status"] == "COMPLETED").all()
    # each row records the Python and the CPU kernel path of the trial that scored it
    for row_versions in final["metric_versions"].map(json.loads):
        assert row_versions["python"] == platform.python_version() and row_versions["torch_cpu_capability"]
    kept = final_before.set_index("seed")["trial_id"]
    assert (final.set_index("seed").loc[kept.index, "trial_id"] == kept).all()
    best = search.iloc[0]
    assert set(final["config_id"]) == {best["config_id"]}
    assert (final["augmentation"] == best["augmentation"]).all()
    for metric in ("eval_macro_f1", "eval_psds", "eval_psds_ct", "eval_psds_macro"):
        assert final[metric].between(0, 1).all(), metric
    for metric in ("eval_psds1", "eval_psds2", "eval_intersection_f1"):  # sed_scores_eval, threshold-free
        assert final[metric].between(0, 1).all(), metric
    # compute per trial (issue 24): energy (CodeCarbon, offline), its source, MACs per 10 s, steps
    for frame in (search, final):
        assert (frame["energy_kwh"] > 0).all() and (frame["macs_per_10s"] > 0).all()
        assert (frame["train_steps"] > 0).all() and frame["energy_source"].str.contains("cpu: ").all()
    assert "Configuration for experiment" not in done.stdout  # Ray's box is silenced
    assert "compute, experiment:" in done.stdout and "FutureWarning" not in done.stdout + done.stderr
    # the post-processing stage (final.postprocess: true): tuned on validation, never worse there
    for metric in ("macro_f1", "psds1", "psds2"):
        assert final[f"eval_{metric}_tuned"].between(0, 1).all(), metric
        assert (final[f"pp_val_{metric}_tuned"] >= final[f"pp_val_{metric}"]).all(), metric
    for trial_dir in final["trial_dir"]:  # each (config, seed) leaves its model and DCASE files
        outputs = Path(trial_dir) / "outputs"
        assert (outputs / "best_model.pt").is_file(), outputs
        for part in ("public_eval", "validation"):
            assert (outputs / part / "detections.tsv").is_file() and (outputs / part / "scores" / "filtered").is_dir()
    per_class = json.loads(final.loc[0, "eval_per_class_f1"])
    assert len(per_class) == 10 and "Speech" in per_class
    assert lb.read_metadata(exp / "final.parquet")["stage"] == "final"
    summary = lb.read_parquet(exp / "final_summary.parquet")
    assert len(summary) == 1 and summary.loc[0, "n_seeds"] == 3
    assert 0 <= summary.loc[0, "eval_macro_f1_tuned_mean"] <= 1
    assert summary.loc[0, "eval_psds_mean"] == pytest.approx(final["eval_psds"].mean())

    # TensorBoard: scalars and an HParams session in every trial folder
    trial_dirs = [Path(p) for p in search["trial_dir"]] + [Path(p) for p in final["trial_dir"]]
    for directory in trial_dirs:
        assert list(directory.glob("events.out.tfevents.*")), directory
        scalars, hparams = _event_tags(directory)
        assert "val/val_macro_f1" in scalars, (directory, scalars)
        assert "_hparams_/session_start_info" in hparams and "_hparams_/experiment" in hparams
    final_scalars, _ = _event_tags(Path(final["trial_dir"].iloc[-1]))
    assert "eval/eval_psds" in final_scalars

    # ---- 4. resuming a finished experiment reruns nothing (and starts no Ray)
    again = subprocess.run(resume_cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is complete; nothing to resume" in again.stdout
    assert "runs to do" not in again.stdout and "== search tiny: 4 trials" in again.stdout
    assert len(lb.read_parquet(exp / "final.parquet")) == 3

    # no Ray process of the SIGKILLed run is left: GCS, raylet and workers exit within
    # seconds of their driver, the dashboard and runtime-env agents within about a minute
    # (they poll the raylet; measured 30-65 s)
    assert len(orphans) >= 3, orphans
    deadline = time.monotonic() + 150
    while alive(orphans) and time.monotonic() < deadline:
        time.sleep(1.0)
    assert not alive(orphans), f"processes of the killed run still alive: {sorted(alive(orphans))}"
