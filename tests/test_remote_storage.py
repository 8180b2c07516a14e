"""`--out s3://...` against a real S3-compatible server on loopback (moto's server mode, started and stopped here).

Ray keeps the experiment (state, trial checkpoints and files) in the
bucket; the leaderboards, Optuna journal, prepared data and report are
written on the driver and copied there at the end (search.remote_storage).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
from clusters import REPO, free_port

from search.run import main

pytestmark = pytest.mark.slow  # Ray end-to-end: the inner loop runs -m "not slow"

TINY = str(REPO / "tests" / "spaces" / "tiny.yaml")
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_ray():
    """A moto S3 server on 127.0.0.1, the AWS environment pointing at it, and a local Ray inheriting it."""
    pytest.importorskip("moto")
    import pyarrow.fs as pafs
    import ray

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    saved = {k: os.environ.get(k) for k in [*KEYS, "AWS_ENDPOINT_URL"]}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("moto's S3 server did not start") from None
                time.sleep(0.3)
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(KEYS, AWS_ENDPOINT_URL=endpoint)
        fs = pafs.S3FileSystem(
            access_key="testing",
            secret_key="testing",
            endpoint_override=endpoint,
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        fs.create_dir("sedtune")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # workers inherit the AWS_* variables
        yield fs
    finally:
        import ray

        ray.shutdown()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_storage_that_cannot_be_written_is_refused(s3_ray, tmp_path, capsys, session_cache, tiny_data_root):
    code = main(
        [
            "--space",
            TINY,
            "--out",
            "s3://no-such-bucket/runs",
            "--driver-dir",
            str(tmp_path / "driver"),
            "--data",
            str(tiny_data_root),
            "--cache-dir",
            str(session_cache),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--out s3://no-such-bucket/runs: the driver cannot write in s3://no-such-bucket/runs" in err
    assert "AWS_ENDPOINT_URL" in err
    assert not (tmp_path / "driver" / "tiny").exists()


@pytest.mark.timeout(500)
def test_search_on_s3_then_resume_from_the_bucket_on_a_driver_without_the_experiment(
    s3_ray, tmp_path, capsys, session_cache, tiny_data_root
):
    """A search with `--out s3://...` without its final stage, then `--resume` from another driver folder:
    the driver files come back from the bucket, the finished search is kept (no trial retrained), the
    final stage runs, and the experiment in the bucket holds Ray's files and the driver's."""
    import pyarrow.fs as pafs

    common = ["--data", str(tiny_data_root), "--cache-dir", str(session_cache)]
    first = ["--space", TINY, "--num-samples", "2", "--out", "s3://sedtune/runs", "--no-final", "--no-report"]
    one = tmp_path / "one"
    assert main([*first, "--driver-dir", str(one), *common]) == 0, capsys.readouterr().err[-3000:]
    printed = capsys.readouterr()
    assert "s3://sedtune/runs checked from the driver and 1 node(s)" in printed.out
    assert f"written on the driver in {one / 'tiny'} and copied to s3://sedtune/runs/tiny" in printed.out
    fs = s3_ray
    with fs.open_input_file("sedtune/runs/tiny/search.parquet") as f:
        before = pd.read_parquet(f)
    assert len(before) == 2 and before["val_macro_f1"].notna().all()
    other = tmp_path / "two"
    missing = ["--resume", "--out", "s3://sedtune/runs", "--name", "nope", "--driver-dir", str(other)]
    assert main(missing) == 2
    assert "--resume: no experiment at s3://sedtune/runs/nope (no sedtune_run.json)" in capsys.readouterr().err
    assert not other.exists() or not any(other.iterdir())  # nothing half-copied left behind
    code = main(["--resume", "--out", "s3://sedtune/runs", "--name", "tiny", "--driver-dir", str(other)])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    assert "sedtune: --resume: copied sedtune_run.json, search.parquet" in printed.out
    assert "from s3://sedtune/runs/tiny into" in printed.out
    local = pd.read_parquet(other / "tiny" / "search.parquet")
    assert sorted(local["trial_id"]) == sorted(before["trial_id"])  # the search was not run again
    names = {
        info.path.removeprefix("sedtune/runs/tiny/")
        for info in fs.get_file_info(pafs.FileSelector("sedtune/runs/tiny", recursive=True))
    }
    # the driver's files, copied
    for name in (
        "search.parquet",
        "final.parquet",
        "final_summary.parquet",
        "optuna.journal",
        "sedtune_run.json",
        "report.html",
        "progress.log",
        "concurrency.json",
    ):
        assert name in names, name
    # Ray's own: experiment state, per-trial results and checkpoints, the final stage's outputs
    assert any(n.startswith("experiment_state") for n in names)
    assert sum(n.endswith("/progress.csv") and n.startswith("trial_") for n in names) == 2
    assert any(n.startswith("trial_") and "/checkpoint_" in n for n in names)
    assert any(n.startswith("final/") and n.endswith("/outputs/best_model.pt") for n in names)
    with fs.open_input_file("sedtune/runs/tiny/final.parquet") as f:
        final = pd.read_parquet(f)
    assert len(final) >= 2 and final["eval_macro_f1"].notna().all()
