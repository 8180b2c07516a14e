"""search.report: the page of an experiment folder, its numbers, and how it opens in a real browser.

Every experiment here is synthetic (`search.report.synthetic`: the leaderboards
written by the functions search.run uses, scores from a seeded generator), so
the module costs seconds and starts no Ray. The browser test runs headless
Chromium (system package `chromium`, installed by .ci/run) with no network;
it is skipped, saying why, only when no Chromium binary exists.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search import leaderboard as lb
from search.report import ReportError, build_report, load_experiment
from search.report.__main__ import main as report_main
from search.report.study import importances, leaderboard_study
from search.report.synthetic import write_synthetic_experiment


class _Tables(HTMLParser):
    """Tables (header row + cell text) and image sources of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs and not str(attrs[key]).startswith(("data:", "#")):
                self.external.append(attrs[key])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _table_with(parser: _Tables, header: str) -> pd.DataFrame:
    for table in parser.tables:
        if table and header in table[0]:
            return pd.DataFrame(table[1:], columns=table[0])
    raise AssertionError(f"no table with a {header!r} column")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    folder = write_synthetic_experiment(tmp_path_factory.mktemp("report") / "synthetic", n_trials=24, top_k=2)
    build_report(folder)
    return folder


def test_numbers_on_the_page_are_the_leaderboards(experiment: Path) -> None:
    parser = _Tables()
    parser.feed((experiment / "report.html").read_text())
    search = lb.read_parquet(experiment / lb.SEARCH_FILE)
    shown = _table_with(parser, "selection_value").set_index("trial_id")
    assert list(shown.index) == list(search["trial_id"])  # every trial, in leaderboard order
    for row in search.head(3).itertuples():
        assert shown.loc[row.trial_id, "val_macro_f1"] == f"{row.val_macro_f1:.4f}"
        assert shown.loc[row.trial_id, "val_psds"] == f"{row.val_psds:.4f}"
        assert shown.loc[row.trial_id, "status"] == row.status
    # the final stage: mean and CI from final_summary.parquet, the control, the paper's Table 1 row "none"
    summary = lb.read_parquet(experiment / lb.FINAL_SUMMARY_FILE)
    table = _table_with(parser, "eval_macro_f1_ci95_low")
    assert len(table) == len(summary) == 3
    for (_, got), want in zip(table.iterrows(), summary.itertuples()):
        assert got["eval_macro_f1_mean"] == f"{want.eval_macro_f1_mean:.4f}"
        assert got["eval_psds_ci95_high"] == f"{want.eval_psds_ci95_high:.4f}"
    control = table[table["control"] == "yes"]
    assert list(control["config"]) == ["control: none"]
    assert control.iloc[0]["paper_eval_macro_f1"] == "0.2910" and control.iloc[0]["paper_eval_psds"] == "0.5000"
    # per-class F1: the mean over seeds of final.parquet's JSON
    final = lb.read_parquet(experiment / lb.FINAL_FILE)
    dog = np.mean([json.loads(t)["Dog"] for t in final.loc[final["control"], "eval_per_class_f1"]])
    per_class = _table_with(parser, "Dog").set_index("config")
    assert per_class.loc["control: none", "Dog"] == f"{dog:.4f}"
    # the reproduction commands, as the leaderboard holds them
    commands = _table_with(parser, "command")
    assert commands.iloc[0]["command"] == search.iloc[0]["command"]
    # one figure per section, each a PNG data URI that decodes
    from PIL import Image

    assert len(parser.images) == 8 and not parser.external
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size[0] > 100


def test_study_and_importance_follow_the_leaderboard(experiment: Path) -> None:
    exp = load_experiment(experiment)
    study = leaderboard_study(exp.search, exp.space, "val_psds")
    assert len(study.trials) == len(exp.search)
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    for row in exp.search.head(5).itertuples():
        trial = by_id[row.trial_id]
        assert trial.value == pytest.approx(row.val_psds)
        assert trial.params["augmentation"] == row.augmentation
        assert trial.params["consistency_weight"] == pytest.approx(row.consistency_weight)
        assert ("epsilon" in trial.params) == (row.augmentation == "vat")  # conditional: only where sampled
    result = {i.param: i for i in importances(study, "val_psds")}
    assert set(result) == {"augmentation", "locations", "consistency_weight", "noise_scale", "epsilon", "mixup_alpha"}
    assert result["consistency_weight"].n_trials == len(exp.search)
    assert result["epsilon"].n_trials == int((exp.search["augmentation"] == "vat").sum())
    assert all(0.0 <= i.importance <= 1.0 for i in result.values())


def test_a_running_search_is_reported_from_its_trial_folders(tmp_path: Path) -> None:
    folder = write_synthetic_experiment(tmp_path / "live", n_trials=6, leaderboards=False)
    exp = load_experiment(folder)
    assert exp.live and len(exp.search) == 6
    assert set(exp.search["status"]) <= {"COMPLETED", "IN_PROGRESS"}
    text = build_report(folder).read_text()
    assert "search.parquet is not written yet" in text and "no final-stage run has finished yet" in text


def test_bad_input_names_the_file_and_keeps_the_previous_page(experiment: Path, tmp_path: Path, capsys) -> None:
    assert report_main([str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    with pytest.raises(ReportError, match="not a sedtune experiment"):
        load_experiment(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(experiment, broken)
    before = (broken / "report.html").read_text()
    (broken / lb.FINAL_FILE).write_bytes(b"not parquet")
    with pytest.raises(ReportError, match=r"final\.parquet: not a readable Parquet file"):
        build_report(broken)
    assert (broken / "report.html").read_text() == before


def _chromium() -> str | None:
    for name in (os.environ.get("SEDTUNE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _headless(binary: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a file:// page with every host name unresolvable (no network) and its console on stderr."""
    with tempfile.TemporaryDirectory(prefix="sedtune-chromium-") as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--no-first-run",
                "--enable-logging=stderr",
                "--v=0",
                *args,
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(
    _chromium() is None,
    reason="no Chromium binary (chromium, chromium-browser, google-chrome, "
    "or $SEDTUNE_CHROMIUM): apt-get install -y chromium (.ci/run does)",
)
def test_the_page_opens_offline_in_a_browser(experiment: Path, tmp_path: Path) -> None:
    binary = _chromium()
    # the console check sees console output: a page with an error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('sedtune-probe'); missingFunction();</script></body></html>")
    assert any("sedtune-probe" in line for line in _console(_headless(binary, bad, "--dump-dom").stderr))

    page = experiment / "report.html"
    dom = _headless(binary, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console(dom.stderr) == []
    assert "Search leaderboard" in dom.stdout and dom.stdout.count("<img") == 8
    shot = tmp_path / "shot.png"
    run = _headless(binary, page, f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars")
    assert run.returncode == 0 and _console(run.stderr) == []
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    assert (pixels < 128).mean() > 0.01


def test_final_configs_are_named_by_label_and_told_apart_by_rank(experiment: Path) -> None:
    from search.report.build import _names

    exp = load_experiment(experiment)
    ids = list(dict.fromkeys(exp.summary["config_id"].astype(str)))
    ranked = [cid for cid in ids if cid not in exp.control_ids]
    assert len(ranked) >= 2
    summary = exp.summary.copy()
    final = exp.final.copy()
    for frame in (summary, final):  # two top configs of one family: the same words
        mask = frame["config_id"].astype(str).isin(ranked)
        frame.loc[mask, "label"] = "mixup at latent"
    exp.summary, exp.final = summary, final
    names = _names(exp)
    ranks = dict(zip(summary["config_id"].astype(str), summary["rank"]))
    for cid in ranked:
        assert names[cid] == f"#{int(ranks[cid])} mixup at latent"
    for cid in exp.control_ids:
        assert names[cid].startswith("control")


def test_the_page_says_what_the_rungs_compared(tmp_path: Path) -> None:
    folder = write_synthetic_experiment(tmp_path / "rungs", n_trials=6, leaderboards=False)
    assert "the rungs compared" not in build_report(folder).read_text()  # the space's metric: nothing to say
    run = json.loads((folder / "sedtune_run.json").read_text())
    run["space_text"] = run["space_text"].replace("reduction_factor: 3}", "reduction_factor: 3, rung_metric: val_psds}")
    (folder / "sedtune_run.json").write_text(json.dumps(run))
    assert "the rungs compared the trials on val_psds" in build_report(folder).read_text()
