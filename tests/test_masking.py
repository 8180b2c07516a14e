"""search.masking: URLs and texts as they may be shown or stored, and the refusals of search.run (no Ray).

The end-to-end proof -- a password in no byte of an experiment folder after
a search, a kill -9 and --resume on PostgreSQL -- is
tests/test_search_storage_db.py.
"""

from __future__ import annotations

import pytest

from search import leaderboard as lb
from search import masking
from search.run import main

CASES = [
    (
        "postgresql://alice:S3cretPW@127.0.0.1:5432/optuna",
        "postgresql://alice:***@127.0.0.1:5432/optuna",
        "postgresql://alice@127.0.0.1:5432/optuna",
    ),
    (
        "postgresql+psycopg://alice:p%40ss%2Fw@db.lan/optuna",
        "postgresql+psycopg://alice:***@db.lan/optuna",
        "postgresql+psycopg://alice@db.lan/optuna",
    ),
    (
        "postgresql://db.lan/optuna?user=alice&password=S3cretPW&sslmode=require",
        "postgresql://db.lan/optuna?user=alice&password=***&sslmode=require",
        "postgresql://db.lan/optuna?user=alice&sslmode=require",
    ),
    (
        "s3://AKIAEXAMPLE:wJalrXUtnFEMI%2FK7MDENG@bucket/results",
        "s3://AKIAEXAMPLE:***@bucket/results",
        "s3://AKIAEXAMPLE@bucket/results",
    ),
    (
        "s3://bucket/results?access_key=AKIAEXAMPLE&secret_key=wJalrXUtnFEMI&region=eu-west-1",
        "s3://bucket/results?access_key=***&secret_key=***&region=eu-west-1",
        "s3://bucket/results?region=eu-west-1",
    ),
    (
        "https://acct.blob.core.windows.net/c/x?sv=2022-11-02&sig=AbC%2Bd%3D&se=2026",
        "https://acct.blob.core.windows.net/c/x?sv=2022-11-02&sig=***&se=2026",
        "https://acct.blob.core.windows.net/c/x?sv=2022-11-02&se=2026",
    ),
    (
        "https://x.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=abcdef0123",
        "https://x.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***",
        "https://x.s3.amazonaws.com/k",
    ),
    ("https://ghp_TOKEN123@github.com/org/repo", "https://***@github.com/org/repo", "https://github.com/org/repo"),
    # nothing secret: unchanged
    ("postgresql://alice@db.lan/optuna", None, None),
    ("sqlite:////shared/studies.db", None, None),
    ("mysql+pymysql://optuna@db:3306/optuna", None, None),
    ("gs://bucket/sedtune-results", None, None),
    ("https://docs.ray.io/en/latest/ray-security/index.html", None, None),
    ("/shared/studies.journal", None, None),
]


@pytest.mark.parametrize("url,masked,bare", CASES)
def test_mask_url(url, masked, bare):
    assert masking.mask_url(url) == (masked or url)
    assert masking.without_secrets(url) == (bare or url)
    assert masking.has_secret(url) == (masked is not None)
    for secret in masking.secrets_of(url):
        assert secret not in masking.mask_url(url)


def test_mask_text_masks_urls_and_every_remembered_secret():
    url = "postgresql://alice:Sup3r%21Secret@10.0.0.5/optuna"
    masked = masking.remember(url)
    assert masked == "postgresql://alice:***@10.0.0.5/optuna"
    assert masking.reveal(masked) == url  # this process was given it
    assert masking.reveal("postgresql://bob:***@10.0.0.5/optuna") == "postgresql://bob@10.0.0.5/optuna"
    text = (
        "OperationalError: could not connect to 'postgresql://alice:Sup3r%21Secret@10.0.0.5/optuna' "
        "(password Sup3r!Secret rejected); see s3://KEY:abc123xyz@bucket/x"
    )
    shown = masking.mask_text(text)
    assert "Sup3r" not in shown and "abc123xyz" not in shown
    assert "postgresql://alice:***@10.0.0.5/optuna" in shown and "s3://KEY:***@bucket/x" in shown


def test_leaderboard_metadata_masks_the_space_storage():
    text = "name: shared\nstorage: postgresql://alice:MetaSecret9@db.lan/optuna\nmetric: val_macro_f1\n"
    meta = lb.run_metadata(text, "search", ["val_macro_f1"], extra={"note": "s3://K:MetaKey77@b/x"}, versions={})
    assert "MetaSecret9" not in meta["space"] and "postgresql://alice:***@db.lan/optuna" in meta["space"]
    assert meta["note"] == "s3://K:***@b/x"


def test_refusals_never_print_the_password(tmp_path, capsys):
    # the URL of the issue: nothing listens on port 1; the refusal names the storage masked
    space = tmp_path / "tiny.yaml"
    space.write_text((__import__("pathlib").Path(__file__).parent / "spaces" / "tiny.yaml").read_text())
    code = main(
        [
            "--space",
            str(space),
            "--out",
            str(tmp_path / "out"),
            "--storage",
            "postgresql://alice:S3cretPW@127.0.0.1:1/optuna",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "S3cretPW" not in err, err
    assert "storage postgresql://alice:***@127.0.0.1:1/optuna: cannot open it" in err
    assert not (tmp_path / "out").exists()
    # --debug prints the traceback, masked too
    code = main(
        [
            "--space",
            str(space),
            "--out",
            str(tmp_path / "out"),
            "--debug",
            "--storage",
            "postgresql://alice:S3cretPW@127.0.0.1:1/optuna",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err and "S3cretPW" not in err


def test_resume_takes_the_password_from_storage_given_again(tmp_path):
    import dataclasses
    import json
    from pathlib import Path

    from search.run import RunSettings, UsageError, build_parser, resolve_settings

    space = (Path(__file__).parent / "spaces" / "tiny.yaml").read_text()
    exp = tmp_path / "out" / "tiny"
    exp.mkdir(parents=True)
    masked = "postgresql://alice:***@db.lan:5432/optuna"
    settings = RunSettings("tiny.yaml", space, None, None, None, None, "", masked)
    (exp / "sedtune_run.json").write_text(json.dumps(dataclasses.asdict(settings)))
    full = "postgresql://alice:GivenAgain42@db.lan:5432/optuna"
    args = ["--resume", "--out", str(tmp_path / "out"), "--name", "tiny", "--storage"]
    resumed, _, _ = resolve_settings(build_parser().parse_args([*args, full]))
    assert resumed.storage == masked and masking.reveal(masked) == full  # the password, in this process only
    with pytest.raises(UsageError) as refused:
        resolve_settings(build_parser().parse_args([*args, "postgresql://bob:OtherPass77@db.lan:5432/optuna"]))
    assert "OtherPass77" not in str(refused.value) and "postgresql://bob:***@db.lan:5432/optuna" in str(refused.value)
