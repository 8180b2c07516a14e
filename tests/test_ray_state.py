"""search.ray_state: Ray's state files cut short by a kill are mended from Ray's staging copy or set aside.

The files are built as Ray 2.x writes them (experiment_state JSON whose trial
states are JSON strings; the searcher's files are pickles), in an experiment
folder and in a staging folder `<ray temp>/session_*/artifacts/<session>/<name>/driver_artifacts`.
A real killed run whose state file is then cut goes through `--resume` in
tests/test_search_run.py.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from search import ray_state as rs
from sed.errors import UserError

OLD, NEW = "2026-12-07_10-00-00", "2026-12-07_11-00-00"


def experiment_state(trial_ids: list[str], status: str = "TERMINATED") -> bytes:
    trials = [[json.dumps({"trial_id": t, "status": status, "config": {"x": 1}}, indent=2), "{}"] for t in trial_ids]
    return json.dumps({"trial_data": trials, "runner_data": {"_iteration": 7}, "stats": {}}).encode()


def session(folder: Path, stamp: str, trial_ids: list[str], status: str = "TERMINATED") -> dict[str, bytes]:
    """Ray's three state files of one session in `folder`; their bytes by name."""
    files = {
        f"experiment_state-{stamp}.json": experiment_state(trial_ids, status),
        f"search_gen_state-{stamp}.json": pickle.dumps({"counter": len(trial_ids), "finished": False}),
        f"searcher-state-{stamp}.pkl": pickle.dumps({"trials": trial_ids, "sampler": list(range(50))}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def staging(root: Path, ray_session: str, stamp: str, name: str = "demo") -> Path:
    return root / ray_session / "artifacts" / stamp / name / "driver_artifacts"


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_whole_and_cut_files_are_told_apart():
    state = experiment_state(["a1", "b2"])
    searcher = pickle.dumps({"points": [{"x": 1}] * 20, "next_index": 3})
    assert rs.is_whole("experiment_state-x.json", state) and rs.is_whole("searcher-state-x.pkl", searcher)
    for keep in (1, len(state) // 2, len(state) - 1):
        assert not rs.is_whole("experiment_state-x.json", state[:keep])
    for keep in (0, 1, len(searcher) // 2, len(searcher) - 1):
        assert not rs.is_whole("searcher-state-x.pkl", searcher[:keep])
    # search_gen_state-*.json is a pickle despite its name
    assert rs.is_whole("search_gen_state-x.json", searcher) and not rs.is_whole(
        "search_gen_state-x.json", searcher[:-1]
    )
    # the trial ids a cut state still names (JSON inside JSON: the quotes are escaped)
    assert rs.trial_ids(state) == {"a1", "b2"}
    assert rs.trial_ids(state[: state.index(b"b2") - 20]) == {"a1"}


def test_whole_state_is_left_alone(tmp_path):
    exp = tmp_path / "out" / "demo"
    files = session(exp, NEW, ["a1"])
    assert rs.check_experiment_state(exp, roots=[]) == []
    assert {p.name: p.read_bytes() for p in exp.iterdir()} == files


def test_cut_state_is_mended_from_ray_staging_copy(tmp_path):
    exp, ray_tmp = tmp_path / "out" / "demo", tmp_path / "ray"
    session(exp, NEW, ["a1", "b2"], status="RUNNING")
    # the staging folder holds the newer whole snapshot (b2 ended since the last copy)
    whole = session(staging(ray_tmp, "session_2026-12-07_10-59-58_1", NEW), NEW, ["a1", "b2"])
    # an experiment of the same name started in the same second elsewhere: other trials, newer file
    session(staging(ray_tmp, "session_2026-12-07_10-59-59_2", NEW), NEW, ["zz"])
    cut(exp / f"experiment_state-{NEW}.json")

    lines = rs.check_experiment_state(exp, roots=[ray_tmp])

    assert len(lines) == 1 and f"experiment_state-{NEW}.json" in lines[0] and "mended" in lines[0]
    assert "session_2026-12-07_10-59-58_1" in lines[0]
    # the whole snapshot, all three files of it (one moment's state), nothing left over
    assert {p.name: p.read_bytes() for p in exp.iterdir()} == whole


def test_cut_state_without_a_copy_falls_back_to_the_previous_session(tmp_path):
    exp = tmp_path / "out" / "demo"
    old = session(exp, OLD, ["a1"])
    new = session(exp, NEW, ["a1", "b2"])
    cut(exp / f"searcher-state-{NEW}.pkl", keep=0.3)
    new[f"searcher-state-{NEW}.pkl"] = (exp / f"searcher-state-{NEW}.pkl").read_bytes()
    ray_tmp = tmp_path / "ray"
    session(staging(ray_tmp, "session_x", NEW), NEW, ["zz"])  # another experiment's: not taken

    lines = rs.check_experiment_state(exp, roots=[ray_tmp])

    assert "kept as *.torn" in lines[0] and f"resuming from Ray's snapshot of the run started {OLD}" in lines[1]
    # the new session is set aside, byte for byte; the old one is what Ray's patterns now find
    kept = {p.name: p.read_bytes() for p in exp.iterdir()}
    assert kept == {**old, **{name + rs.TORN_SUFFIX: data for name, data in new.items()}}
    assert rs.session_files(sorted(kept)) == rs.session_files(sorted(old))


def test_nothing_whole_left_is_refused_by_name(tmp_path):
    exp = tmp_path / "out" / "demo"
    files = session(exp, NEW, ["a1"])
    cut(exp / f"experiment_state-{NEW}.json", keep=0.9)
    cut_bytes = (exp / f"experiment_state-{NEW}.json").read_bytes()

    with pytest.raises(rs.TornState) as info:
        rs.check_experiment_state(exp, roots=[])

    assert isinstance(info.value, UserError)  # search.run prints it as an error, exit 2
    assert f"cannot resume {exp}" in str(info.value) and "--name" in str(info.value)
    assert "without --resume" in str(info.value)
    kept = {p.name: p.read_bytes() for p in exp.iterdir()}
    assert kept[f"experiment_state-{NEW}.json.torn"] == cut_bytes  # nothing deleted
    assert kept[f"searcher-state-{NEW}.pkl.torn"] == files[f"searcher-state-{NEW}.pkl"]


def test_ray_temp_roots_follow_ray_tmpdir(tmp_path, monkeypatch):
    (tmp_path / "ray").mkdir()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert rs.ray_temp_roots()[0] == tmp_path / "ray"


def test_cut_tuner_pickle_is_refused_by_name(tmp_path):
    exp = tmp_path / "out" / "demo"
    session(exp, NEW, ["a1"])
    tuner = pickle.dumps({"trainable": "train_sed", "param_space": {}, "pad": list(range(100))})
    (exp / "tuner.pkl").write_bytes(tuner)
    assert rs.check_experiment_state(exp, roots=[]) == []
    (exp / "tuner.pkl").write_bytes(tuner[: len(tuner) // 2])
    with pytest.raises(rs.TornState, match=r"its tuner\.pkl .* was cut short"):
        rs.check_experiment_state(exp, roots=[])
    assert (exp / "tuner.pkl").read_bytes() == tuner[: len(tuner) // 2]  # left as it was
