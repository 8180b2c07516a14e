"""The Optuna study in a PostgreSQL database through a kill -9 and --resume, secrets kept.

A server of the Debian package started here on a loopback port with password
authentication (tests/pg_server.py; skipped, with the reason, where none can
be started). The same resume with the default journal file is
tests/test_search_run.py's; a study in SQLite, read live by another process,
tests/test_search_study.py's. One flow, on tests/spaces/tiny.yaml
(4 trials of 12 one-step epochs, no final stage: when the first trial ends, two
have not started and each takes 12 validations, so the search cannot end in the
2 s between the first finished trial and the kill -- with 3 trials of 2 epochs it
did, on an idle 2-core machine where an epoch takes ~0.5 s and Ray reuses the worker), with `RAY_AUTH_MODE` unset as for a
user (the run's own Ray cluster then uses a token of that run only, written
nowhere):

1. `search.run --storage URL` (the URL carries the password); SIGKILL the
   driver once a trial has finished;
2. `--resume` with nothing but `--out/--name` (the password only in a libpq
   password file named by PGPASSFILE, outside the experiment);
   while it runs, this process reads the study live with `optuna.load_study`
   (what optuna-dashboard does);
3. the study's COMPLETE trials are exactly search.parquet's (same Ray trial
   ids and values), none RUNNING; report.html is written;
4. the password is in no byte of any file under the experiment
   folder (report.html, sedtune_run.json, tuner.pkl, searcher-state-*.pkl,
   the leaderboards, TensorBoard files, progress.log ...), in none of Ray's
   session logs, and nowhere in the output of either run.

Without Ray: the pickled storage holds no password, a fresh process
unpickles it with the password from PGPASSFILE, and without any source it
refuses with the URL masked and says where the password can come from.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pg_server
import pytest
from live_study import LiveStudy
from procs import descendants, kill_all, output_lines

from search import leaderboard as lb

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "tests" / "spaces" / "tiny.yaml"


@pytest.fixture(scope="module")
def postgres():
    reason = pg_server.unavailable()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="sedtune-pg-"))
    try:
        server = pg_server.start_server(root)
    except RuntimeError as exc:
        pytest.skip(f"a PostgreSQL server could not be started here: {exc}")
    try:
        yield server
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]


@pytest.mark.timeout(480)
def test_study_in_postgresql_survives_kill_and_resume(postgres, tmp_path):
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths are length-limited
    live = LiveStudy(postgres.url())
    try:
        _kill_resume_check(postgres, live, tmp_path, ray_tmp)
    finally:
        live.close()
        subprocess.run(["rm", "-rf", str(ray_tmp)], check=False)


def _kill_resume_check(server: pg_server.Server, live: LiveStudy, tmp_path: Path, ray_tmp: Path) -> None:
    url = server.url()
    out = tmp_path / "results"
    exp = out / "tiny"
    # RAY_AUTH_MODE unset, as for a user: the run's own cluster gets a token of its own (search.ray_auth),
    # written nowhere (HOME is a fresh folder: Ray would write HOME/.ray/auth_token)
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE", "RAY_AUTH_MODE")}
    home = tmp_path / "home"
    home.mkdir()
    env.update(
        PYTHONUNBUFFERED="1", RAY_TMPDIR=str(ray_tmp), PGPASSFILE=str(tmp_path / "no-such-passfile"), HOME=str(home)
    )
    cmd = [
        sys.executable,
        "-m",
        "search.run",
        "--space",
        str(SPACE),
        "--out",
        str(out),
        "--storage",
        url,
        "--num-samples",
        "4",
        "--max-epochs",
        "12",
        "--no-final",
        "--verbose",
    ]
    outputs: list[str] = []

    # ---- 1. a trial finishes, then SIGKILL (the first run has only the URL)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    below: set[int] = set()
    try:
        for line in output_lines(proc, 240, lines):
            if re.search(r"\[search\] \w+ (done|stopped by the scheduler)", line):
                time.sleep(2)  # Ray's state snapshot of that trial
                below = descendants(proc.pid)
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
        kill_all(below)  # this run's Ray processes, by PID
        lines.append(proc.stdout.read())
    outputs.append("".join(lines))
    assert below, outputs[-1]
    assert not (exp / lb.SEARCH_FILE).exists()

    # ---- 2. resume without the URL (the password in PGPASSFILE); read the study live
    env["PGPASSFILE"] = str(server.passfile(tmp_path / "pgpass"))
    resume = [sys.executable, "-m", "search.run", "--resume", "--out", str(out), "--name", "tiny"]
    proc = subprocess.Popen(resume, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    live_reads = 0
    try:
        while proc.poll() is None:
            study = live.load("tiny")
            if study is not None and study.trials and proc.poll() is None:
                live_reads += 1
            time.sleep(1.0)
        outputs.append(proc.stdout.read())
    finally:
        if proc.poll() is None:
            below = descendants(proc.pid)
            proc.kill()
            proc.wait(timeout=30)
            kill_all(below)
    assert proc.returncode == 0, outputs[-1]
    assert live_reads > 0

    # ---- 3. the study is the leaderboard; the report is there
    search = lb.read_parquet(exp / lb.SEARCH_FILE).set_index("trial_id")
    assert len(search) == 4 and set(search["status"]) <= {"COMPLETED", "EARLY_STOPPED"}, search
    study = live.load("tiny")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["ray_trial_id"] for t in complete) == sorted(search.index)
    assert all(t.value == pytest.approx(search.loc[t.user_attrs["ray_trial_id"], "selection_value"]) for t in complete)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert (exp / "report.html").is_file()
    assert not (home / ".ray").exists()

    # ---- 4. the password is nowhere: experiment folder, Ray's session logs, output of both runs
    secret = server.password.encode()
    assert _files_holding(exp, secret) == []
    assert _files_holding(ray_tmp, secret) == []
    assert all(server.password not in text for text in outputs)
    masked = f"postgresql://alice:***@127.0.0.1:{server.port}/optuna"
    assert masked.encode() in (exp / "sedtune_run.json").read_bytes()
    assert masked in (exp / "report.html").read_text()
    assert masked.encode() in (exp / "tuner.pkl").read_bytes()
    assert list(exp.glob("searcher-state-*.pkl"))
    assert "password in --storage is visible" in outputs[0]  # the first run warns about its command line


def test_pickled_storage_holds_no_password(postgres, tmp_path):
    from search.rdb_storage import SecretFreeRDBStorage
    from search.study_storage import StorageError

    storage = SecretFreeRDBStorage(postgres.url())
    optuna.create_study(study_name="pickled", storage=storage)
    data = pickle.dumps(storage)
    assert postgres.password.encode() not in data
    assert b"alice:***@127.0.0.1" in data
    assert pickle.loads(data).get_study_id_from_name("pickled") >= 0  # this process was given the password
    path = tmp_path / "storage.pkl"
    path.write_bytes(data)
    reader = (
        "import pickle, sys\nfrom search.study_storage import StorageError\n"
        "try:\n    s = pickle.load(open(sys.argv[1], 'rb'))\n    print('opened', s.get_study_id_from_name('pickled'))\n"
        "except StorageError as exc:\n    print('refused', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    with_file = subprocess.run(
        [sys.executable, "-c", reader, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**env, "PGPASSFILE": str(postgres.passfile(tmp_path / "pgpass"))},
        timeout=60,
    )
    assert with_file.stdout.startswith("opened"), with_file.stdout + with_file.stderr
    without = subprocess.run(
        [sys.executable, "-c", reader, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**env, "PGPASSFILE": str(tmp_path / "none")},
        timeout=60,
    )
    assert without.stdout.startswith("refused storage postgresql://alice:***@"), without.stdout + without.stderr
    assert "~/.pgpass" in without.stdout and postgres.password not in without.stdout + without.stderr
    # a wrong password is refused with the URL masked
    wrong = postgres.url().replace(postgres.password, "Wr0ngPassword")
    with pytest.raises(StorageError, match=r"alice:\*\*\*@") as refused:
        SecretFreeRDBStorage(wrong)
    assert "Wr0ngPassword" not in str(refused.value) and "password authentication failed" in str(refused.value)
