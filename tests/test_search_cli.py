"""search.run in-process: user errors (exit 2, one paragraph), GPU refusal, a grid with a
diverging trial (ERROR with its reason, excluded from the final stage).

One Ray session is shared by the module (`search.run.main` joins an already
initialised Ray and leaves it running).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from search import leaderboard as lb
from search.run import main

pytestmark = pytest.mark.slow  # Ray end-to-end / learning: the inner loop runs -m "not slow"

REPO = Path(__file__).resolve().parents[1]

TINY_FIXED = """
fixed:
  embedded_size: tiny
  cnn_filters: [4, 8, 8, 8, 8, 8, 8]
  rnn_hidden: 8
  regularization: l2
  batch_size: 8
  max_steps_per_epoch: 1
  rampup_epochs: 1
  device: cpu
  track_energy: false  # CodeCarbon's start: ~1.7 CPU-s a trial process (tests/spaces/tiny.yaml)
"""


def write(tmp_path: Path, name: str, text: str, extra: str = "") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text) + extra)
    return path


# ----------------------------------------------------------------------------- no Ray needed
def test_bad_space_is_one_paragraph_exit_2(tmp_path, capsys):
    space = write(
        tmp_path,
        "bad.yaml",
        "num_samples: 2\nscheduler: {kind: asha, max_epochs: 2}\nparams:\n  augmentation: {choice: [random, noise]}\n",
    )
    assert main(["--space", str(space), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "bad.yaml: params.augmentation.choice: unknown augmentation 'noise'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything was written
    # --debug adds the traceback
    assert main(["--space", str(space), "--out", str(tmp_path / "out"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_cli_refusals(tmp_path, capsys):
    space = REPO / "tests" / "spaces" / "tiny.yaml"
    out = tmp_path / "out"
    assert main(["--resume", "--name", "nothing", "--out", str(out)]) == 2
    assert f"--resume: no experiment at {out / 'nothing'}" in capsys.readouterr().err
    assert main(["--space", str(space), "--out", str(out), "--data", str(tmp_path / "missing")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["--space", str(REPO / "spaces" / "table1-short.yaml"), "--num-samples", "3"]) == 2
    assert "--num-samples does not apply to a grid space" in capsys.readouterr().err
    assert main(["--space", str(space), "--num-samples", "0", "--out", str(out)]) == 2
    assert main([]) == 2
    assert "give --space FILE" in capsys.readouterr().err


def test_resume_refuses_changed_options(tmp_path, capsys):
    space = REPO / "tests" / "spaces" / "tiny.yaml"
    exp = tmp_path / "out" / "tiny"
    exp.mkdir(parents=True)
    assert main(["--resume", "--name", "tiny", "--out", str(tmp_path / "out")]) == 2
    assert "is not a sedtune experiment" in capsys.readouterr().err
    settings = {
        "space_path": str(space),
        "space_text": space.read_text(),
        "num_samples": None,
        "max_epochs": None,
        "data": None,
        "cache_dir": None,
        "created": "x",
    }
    (exp / "sedtune_run.json").write_text(json.dumps(settings))
    other = write(tmp_path, "tiny.yaml", space.read_text().replace("num_samples: 4", "num_samples: 3"))
    assert main(["--resume", "--space", str(other), "--out", str(tmp_path / "out")]) == 2
    assert "differs from the space" in capsys.readouterr().err
    assert main(["--resume", "--name", "tiny", "--out", str(tmp_path / "out"), "--max-epochs", "5"]) == 2
    assert "--max-epochs 5 differs from the original run (None)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- with Ray
@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_gpu_request_without_gpu_is_refused(ray_session, tmp_path, capsys):
    space = write(
        tmp_path,
        "gpu.yaml",
        """
        num_samples: 1
        scheduler: {kind: fifo, max_epochs: 1}
        resources: {cpu: 1, gpu: 0.5}
        params:
          augmentation: {choice: [random]}
        """,
        TINY_FIXED,
    )
    assert main(["--space", str(space), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "resources.gpu=0.5 but the Ray cluster has no GPU" in err and "gpu: auto" in err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written


def test_grid_with_a_diverging_config(ray_session, tmp_path, capsys):
    # noise_scale 1e38 overflows the perturbed input: the trainer raises TrainingDiverged at step 0
    space = write(
        tmp_path,
        "grid.yaml",
        """
        name: grid
        searcher: {kind: grid}
        scheduler: {kind: fifo, max_epochs: 1}
        resources: {cpu: 1, gpu: auto}
        configs:
          - {name: ok, augmentation: random, noise_scale: 0.1, locations: latent}
          - {name: diverges, augmentation: random, noise_scale: 1.0e38, locations: input}
        final: {top_k: 1, seeds: [3], epochs: 1, control: none}
        """,
        TINY_FIXED,
    )
    out = tmp_path / "out"
    assert main(["--space", str(space), "--out", str(out), "--no-report"]) == 0  # report: test_search_study
    printed = capsys.readouterr().out
    assert "FAILED: TrainingDiverged" in printed

    search = lb.read_parquet(out / "grid" / "search.parquet").set_index("label")
    assert set(search.index) == {"ok", "diverges"}
    assert search.loc["ok", "status"] == "COMPLETED" and search.loc["ok", "epochs_run"] == 1
    assert search.loc["diverges", "status"] == "ERROR"
    assert search.loc["diverges", "error"].startswith("TrainingDiverged: loss became non-finite")
    assert search.loc["diverges", "noise_scale"] == pytest.approx(1e38)
    assert search.loc["ok", "locations"] == "latent"
    failure = json.loads((Path(search.loc["diverges", "trial_dir"]) / "failure.json").read_text())
    assert failure["type"] == "TrainingDiverged"

    final = lb.read_parquet(out / "grid" / "final.parquet")
    assert list(final["label"]) == ["ok", "control: no augmentation"] and list(final["seed"]) == [3, 3]
    assert final.loc[0, "config_id"] == search.loc["ok", "config_id"]
    assert final.loc[0, "noise_scale"] == pytest.approx(0.1)
    assert 0.0 <= final.loc[0, "eval_psds"] <= 1.0
    # the no-augmentation control: same seed and epochs, the supervised objective
    assert list(final["control"]) == [False, True]
    assert final.loc[1, "augmentation"] == "none" and final.loc[1, "regularization"] == "none"
    assert final.loc[1, "status"] == "COMPLETED" and 0.0 <= final.loc[1, "eval_psds"] <= 1.0
    summary = lb.read_parquet(out / "grid" / "final_summary.parquet")
    assert list(summary["label"]) == ["ok", "control: no augmentation"] and summary.loc[0, "n_seeds"] == 1
    assert list(summary["control"]) == [False, True]
    assert "vs control" in printed and "fewer than 2 completed seeds" in printed


def test_a_search_per_group_then_the_best_of_each_printed_as_table1(ray_session, tmp_path, capsys):
    # issue #21: each Table 1 row searched on its own (baseline: the fixed reference, one trial;
    # random-latent-l2: 2 trials of its own study), then each one's best x 2 seeds
    space = write(
        tmp_path,
        "groups.yaml",
        """
        name: groups
        searcher: {kind: optuna-tpe, seed: 0, n_startup_trials: 1}
        scheduler: {kind: asha, max_epochs: 2, grace_period: 1, reduction_factor: 2, rung_metric: val_frame_ap}
        resources: {cpu: 1, gpu: 0}
        max_concurrent: 2
        groups: {num_samples: 2, presets: [baseline, random-latent-l2], reference: [baseline]}
        params:
          noise_scale: {loguniform: [0.01, 1.0], when: {augmentation: random}}
          consistency_weight: {loguniform: [0.1, 10.0], when: {augmentation: [random, snr_noise]}}
          l2: {loguniform: [1.0e-7, 1.0e-3], when: {regularization: l2}}
        final: {seeds: [1, 2], epochs: 1}
        """,
        TINY_FIXED.replace("  regularization: l2\n", "  compute_val_frame_ap: true\n"),
    )
    out = tmp_path / "out"
    assert main(["--space", str(space), "--out", str(out), "--no-report"]) == 0
    printed = capsys.readouterr().out

    search = lb.read_parquet(out / "groups" / "search.parquet")
    assert sorted(search["group"]) == ["baseline", "random-latent-l2", "random-latent-l2"]
    # ASHA read the frame AP at its rungs (Tune took the scheduler's own metric); every trial has it
    assert search["val_frame_ap"].between(0, 1).all()
    assert (search["label"] == search["group"]).all()
    reference = search[search["group"] == "baseline"].iloc[0]
    # the reference is not searched: its preset's values, its weight the default 2, nothing sampled
    assert reference["augmentation"] == "snr_noise" and reference["consistency_weight"] == 2.0
    searched = search[search["group"] == "random-latent-l2"]
    assert searched["noise_scale"].nunique() == 2 and (searched["augmentation"] == "random").all()
    for group in ("baseline", "random-latent-l2"):  # each group its own Ray experiment
        assert (out / "groups" / f"search--{group}").is_dir()

    final = lb.read_parquet(out / "groups" / "final.parquet")
    assert sorted(final["label"]) == sorted(["baseline", "random-latent-l2"] * 2)
    best = searched.sort_values("selection_value", ascending=False).iloc[0]
    chosen = final[final["label"] == "random-latent-l2"]
    assert set(chosen["search_trial_id"]) == {best["trial_id"]}
    assert list(chosen["noise_scale"]) == pytest.approx([best["noise_scale"]] * 2)

    assert "== Table 1: each group tuned on validation" in printed
    table = printed.split("== Table 1")[1]
    assert f"noise_scale={best['noise_scale']:.3g}" in table
    assert "0.388/0.565" in table and "0.381/0.552" in table  # the paper's rows beside ours
    line = next(x for x in table.splitlines() if x.startswith("random-latent-l2"))
    assert re.search(r" 2 .* - +[<>=?]{4}\s*$", line), line  # 2 seeds; vs none: no such row; vs baseline
    # resumed: every group finished, nothing to run
    assert main(["--resume", "--name", "groups", "--out", str(out), "--no-report"]) == 0
    assert "is complete; nothing to resume" in capsys.readouterr().out
