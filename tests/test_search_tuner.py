"""search.tuner: the status snapshot that tells an interrupted trial from a finished one,
kept by the Tuner `new_tuner` builds and by the one `restore_tuner` rebuilds from its folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from search.ray_state import RestoreFailed
from search.searchers import make_point_searcher
from search.space import parse_space
from search.tuner import StageTuner, StatusSnapshot, StopSignals, new_tuner, restore_tuner

pytestmark = pytest.mark.slow  # Ray end-to-end / learning: the inner loop runs -m "not slow"

SPACE = parse_space(
    "num_samples: 2\nscheduler: {kind: fifo, max_epochs: 1}\nparams: {augmentation: {choice: [random]}}\n",
    "tuner.yaml",
)


def _grid(*trials: SimpleNamespace) -> SimpleNamespace:
    """Stands for a ResultGrid: only its Trial objects are read."""
    return SimpleNamespace(_experiment_analysis=SimpleNamespace(trials=list(trials)))


def test_snapshot_tells_interrupted_trials_from_finished_ones():
    snapshot = StatusSnapshot()
    running, done, failed = (
        SimpleNamespace(trial_id=i, status=s) for i, s in (("a", "RUNNING"), ("b", "TERMINATED"), ("c", "ERROR"))
    )
    snapshot.on_step_end(1, [running, done, failed])
    assert snapshot.last_status == {"a": "RUNNING", "b": "TERMINATED", "c": "ERROR"}
    running.status = "TERMINATED"  # what Ray says of a trial it stopped for a Ctrl-C
    assert [snapshot.effective_status(t) for t in (running, done, failed)] == ["RUNNING", "TERMINATED", "ERROR"]
    stage = StageTuner(tuner=None, snapshot=snapshot)
    assert stage.interrupted(_grid(running, done, failed), 3, StopSignals())
    assert not stage.interrupted(_grid(done, failed), 2, StopSignals())
    assert stage.interrupted(_grid(done, failed), 3, StopSignals())  # a trial never started
    assert not stage.interrupted(_grid(done, failed), None, StopSignals())
    assert stage.interrupted(_grid(done, failed), 2, StopSignals(sigterms=1))


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_new_and_restored_tuners_keep_their_snapshot(ray_session, tmp_path: Path):
    from ray import tune

    fixed = tmp_path / "fixed"

    def trainable(config):  # defined here: Ray pickles it by value
        if config["name"] == "fails" and not fixed.exists():
            raise ValueError("not yet")
        tune.report({"val_macro_f1": 0.5, "best_val_macro_f1": 0.5})  # Space.tune_metric

    points = [{"name": "works"}, {"name": "fails"}]
    stage = new_tuner(
        trainable,
        SPACE,
        storage=tmp_path,
        name="exp",
        num_samples=2,
        max_concurrent=1,
        search_alg=make_point_searcher(points, SPACE.metric, SPACE.mode),
    )
    grid = stage.fit()
    records = {r.config["name"]: r for r in stage.records(grid)}
    assert records["works"].ray_status == "TERMINATED" and records["fails"].ray_status == "ERROR"
    assert records["fails"].error == "ValueError: not yet"
    assert set(stage.snapshot.last_status) == {r.trial_id for r in records.values()}
    assert not stage.interrupted(grid, 2, StopSignals())

    # the restored Tuner's callbacks come from its tuner.pkl: the snapshot among them is the one Ray updates
    fixed.touch()
    restored = restore_tuner(tmp_path / "exp", trainable, resume_errored=True)
    assert restored.snapshot is not stage.snapshot
    grid = restored.fit()
    records = {r.config["name"]: r for r in restored.records(grid)}
    assert records["fails"].ray_status == "TERMINATED" and records["fails"].error is None
    assert records["fails"].trial_id in restored.snapshot.last_status
    assert not restored.interrupted(grid, None, StopSignals())

    # Ray's state whole (check_experiment_state passes it) but unreadable to Ray: Ray would log
    # "Failed to restore the run state" and start over; the restored stage refuses before any trial
    exp = tmp_path / "exp"
    trial_dirs = sorted(p.name for p in exp.iterdir() if p.is_dir())
    states = sorted(exp.glob("experiment_state-*.json"))
    state = states[-1]
    state.write_text(json.dumps({"trial_data": [["not a trial", "{}"]], "runner_data": {}, "stats": {}}))
    broken = restore_tuner(exp, trainable, resume_errored=True)
    with pytest.raises(RestoreFailed, match=rf"cannot resume {exp}: Ray could not restore its state \(KeyError"):
        broken.fit()
    assert sorted(p.name for p in exp.iterdir() if p.is_dir()) == trial_dirs  # no trial was made
    assert sorted(exp.glob("experiment_state-*.json")) == states  # nor a new session's state
