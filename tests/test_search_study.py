"""The search's Optuna study in a real storage (search.study_storage), multi-objective, and reproduction.

One tiny search (tests/spaces/tiny.yaml selecting on F1 and PSDS: 2 trials
of 1 epoch, no final stage, no report) in a subprocess, its study in an SQLite
database (`--storage sqlite:///...`; the default journal file is
tests/test_search_run.py's, PostgreSQL through a kill and a resume
tests/test_search_storage_db.py's); while it runs, this process reads the
study with `optuna.load_study` (a concurrent reader: what optuna-dashboard
does; SQLite's read locks are the risk, search.study_storage); when it ends,
the study has two objectives and holds exactly search.parquet's trials -- the
same Ray trial ids, parameters and values --, its best_trials are
search.parquet's Pareto front, and the best row's `command` (python -m
sed.train ...) retrains it to the same per-epoch validation F1 and loss. The
bookkeeping around the storage (a taken study name, trials a killed driver
left RUNNING) is tested without Ray.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from live_study import LiveStudy

from search import leaderboard as lb
from search.settings import UsageError, build_parser, resolve_settings
from search.study_storage import JOURNAL_FILE, close_orphans, open_storage, storage_location, study_exists

pytestmark = pytest.mark.slow  # Ray end-to-end / learning: the inner loop runs -m "not slow"

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "tests" / "spaces" / "tiny.yaml"


def _two_metric_space(tmp_path: Path) -> Path:
    """tiny.yaml selecting on F1 and PSDS (validation PSDS on, 10 operating points of 8 clips)."""
    text = SPACE.read_text().replace("metric: val_macro_f1", "metric: [val_macro_f1, val_psds]")
    text = text.replace("fixed:\n", "fixed:\n  compute_val_psds: true\n")
    assert "compute_val_psds: true" in text and "[val_macro_f1, val_psds]" in text
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


@pytest.mark.dynamics
@pytest.mark.timeout(300)
def test_study_in_sqlite_matches_the_leaderboard(tmp_path: Path) -> None:
    out = tmp_path / "results"
    database = tmp_path / "studies.db"
    url = f"sqlite:///{database}"
    live = LiveStudy(url)
    try:
        _study_check(tmp_path, out, database, url, live)
    finally:
        live.close()


def _study_check(tmp_path: Path, out: Path, database: Path, url: str, live: LiveStudy) -> None:
    cmd = [
        sys.executable,
        "-m",
        "search.run",
        "--space",
        str(_two_metric_space(tmp_path)),
        "--out",
        str(out),
        "--num-samples",
        "2",
        "--max-epochs",
        "1",
        "--no-final",
        "--no-report",
        "--storage",
        url,
    ]  # report: test_search_run
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reads_while_running = 0
    try:
        while proc.poll() is None:
            if database.is_file():
                study = live.load("tiny")
                if study is not None and study.trials and proc.poll() is None:
                    reads_while_running += 1
            time.sleep(0.5)
        output = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, output
    assert reads_while_running > 0  # the database was readable while trials were being told
    assert f"optuna-dashboard {url}" in output
    search = lb.read_parquet(out / "tiny" / lb.SEARCH_FILE).set_index("trial_id")
    study = live.load("tiny")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(study.trials) == len(complete) == len(search) == 2
    assert len(study.directions) == 2  # a true two-objective study
    for trial in complete:
        row = search.loc[trial.user_attrs["ray_trial_id"]]
        assert trial.values == [pytest.approx(row["selection_value"]), pytest.approx(row["val_psds"])]
        assert row["selection_value"] == row["val_macro_f1"]
        for name, value in trial.params.items():
            assert value == (pytest.approx(row[name]) if isinstance(value, float) else row[name])
    # the leaderboard's Pareto front is the study's best_trials
    assert set(search.index[search["pareto"].astype(bool)]) == {t.user_attrs["ray_trial_id"] for t in study.best_trials}

    # reproduction: the best row's command retrains that config with its seed on the same data and
    # gets the same per-epoch validation F1 and training loss as the trial
    best = search.iloc[0]
    argv = shlex.split(best["command"])
    assert argv[1:3] == ["-m", "sed.train"] and "epochs=1" in argv and "num_threads=1" in argv
    argv[argv.index("--out") + 1] = str(tmp_path / "reproduced")
    run = subprocess.run(argv, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    history = json.loads((tmp_path / "reproduced" / "metrics.json").read_text())["history"]
    progress = pd.read_csv(Path(best["trial_dir"]) / "progress.csv")
    assert [h["val_macro_f1"] for h in history] == pytest.approx(list(progress["val_macro_f1"]), abs=1e-12)
    assert [h["loss_total"] for h in history] == pytest.approx(list(progress["loss_total"]), rel=1e-6)
    assert max(h["val_macro_f1"] for h in history) == pytest.approx(best["selection_value"], abs=1e-12)


def test_storage_bookkeeping(tmp_path: Path) -> None:
    journal = tmp_path / "shared.journal"
    location = storage_location(str(journal), tmp_path / "exp")
    assert location == str(journal.resolve())
    assert storage_location(None, tmp_path / "exp") == str(tmp_path / "exp" / JOURNAL_FILE)
    assert storage_location("sqlite:///x.db", tmp_path) == "sqlite:///x.db"
    assert not study_exists(location, "tiny")
    study = optuna.create_study(study_name="tiny", storage=open_storage(location), direction="maximize")
    done = [study.ask() for _ in range(3)]
    study.tell(done[0], 0.5)
    study.tell(done[1], 0.25)  # done[2]: asked by a driver that was killed, never run
    assert study_exists(location, "tiny")
    assert close_orphans(location, "tiny") == 1
    states = [t.state for t in optuna.load_study(study_name="tiny", storage=open_storage(location)).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and states.count(optuna.trial.TrialState.FAIL) == 1
    # a new experiment refuses a shared storage that already has a study of its name
    args = build_parser().parse_args(["--space", str(SPACE), "--out", str(tmp_path / "out"), "--storage", str(journal)])
    with pytest.raises(UsageError, match="already holds a study named 'tiny'"):
        resolve_settings(args)
    with pytest.raises(UsageError, match="does not exist"):
        resolve_settings(
            build_parser().parse_args(
                [
                    "--space",
                    str(SPACE),
                    "--out",
                    str(tmp_path / "out"),
                    "--storage",
                    str(tmp_path / "no" / "such.journal"),
                ]
            )
        )
