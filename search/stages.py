"""The two stages of a run: the search, then the final stage; each fits its Tuner and writes its leaderboard.

- `run_search`: Optuna (or a grid's list) + ASHA over the space, through
  Ray Tune, in `OUT/NAME`; writes `search.parquet`. With `--resume` a
  finished search is not rerun and an unfinished one is restored. A space
  with `groups:` runs one such search per group (`run_group_searches`, each
  in `OUT/NAME/search--GROUP`).
- `run_final`: the top-k configs x seeds of `search.final`, in
  `OUT/NAME/final*`; `final.parquet` grows as trials end
  (`final.FinalRecorder`), `final_summary.parquet` is written at the end.

A stage stopped by Ctrl-C/SIGTERM writes what it has, then raises
`Interrupted` (the state is saved; `--resume` continues).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from ray import tune

from . import final as final_stage
from . import leaderboard as lb
from .console import PROGRESS_LOG, ProgressPrinter
from .placement import ConcurrencyMeter
from .prepared import PREPARED_DIR
from .remote_storage import join
from .reproduce import TrainCommand, command_for_run
from .resources import TrialResources
from .rows import search_frame, sort_leaderboard
from .searchers import make_point_searcher, make_scheduler, make_search_alg
from .space import Space
from .space.groups import group_space
from .study_storage import close_orphans, pareto_trial_ids
from .tuner import StopSignals, make_trainable, new_tuner, restore_tuner, trial_runtime

#: search.parquet statuses of a trial that will not run again
FINISHED = ("COMPLETED", "EARLY_STOPPED", "ERROR")


class Interrupted(Exception):
    """The run was stopped by SIGINT/SIGTERM; state is saved and resumable."""


@dataclass
class Experiment:
    """What both stages of one run share: the space, its folder `OUT/NAME`, the data and the trials' resources."""

    space: Space
    exp_dir: Path
    data: str | None
    cache_dir: str | None
    resources: TrialResources
    signals: StopSignals
    debug: bool = False
    #: where the search's Optuna study lives (`search.study_storage`); None: in memory (grids, old runs)
    storage: str | None = None
    #: per-epoch lines and Ray's own progress table on the console too (`--verbose`)
    verbose: bool = False
    #: a URI --out: Ray keeps the experiment there, not in exp_dir (search.remote_storage)
    remote: str | None = None

    def ray_dir(self, *parts: str) -> str:
        """Where Ray keeps this experiment (or its final stage `parts`): `URI/NAME/...` or `OUT/NAME/...`."""
        if self.remote:
            return join(self.remote, self.exp_dir.name, *parts)
        return str(self.exp_dir.joinpath(*parts))

    def printer(self, stage: str, keys: list[str], epochs: int, total: int) -> ProgressPrinter:
        """The stage's live output: status line + events on the console, every epoch in progress.log."""
        space = self.space
        return ProgressPrinter(
            stage,
            space.metric,
            keys,
            epochs,
            space.max_failures,
            total=total,
            log_path=self.exp_dir / PROGRESS_LOG,
            verbose=self.verbose,
            tune_metric=space.tune_metric,
        )

    def trainable(self) -> Any:
        return make_trainable(self.data, self.cache_dir, self.resources, prepared_dir=str(self.exp_dir / PREPARED_DIR))

    def train_command(self) -> TrainCommand:
        """The `command` column's maker: the sed.train line of a trial config on this run's data."""
        return command_for_run(self.data, self.cache_dir, trial_runtime(self.resources))

    def metadata(self, stage: str, **extra: Any) -> dict[str, str]:
        """The `sedtune.*` metadata of a leaderboard file of `stage`."""
        space = self.space
        return lb.run_metadata(
            space.text,
            stage,
            space.metrics,
            extra={
                "space_path": space.path.as_posix(),
                "data": self.data or "embedded",
                "experiment": str(self.exp_dir),
                **extra,
            },
        )


def completed_search(space: Space, exp_dir: Path) -> pd.DataFrame | None:
    """search.parquet when the search stage has finished every trial, else None."""
    path = exp_dir / lb.SEARCH_FILE
    if not path.is_file():
        return None
    frame = lb.read_parquet(path)
    finished = frame["status"].isin(FINISHED).all() if len(frame) else False
    return frame if len(frame) >= space.num_samples and finished else None


def final_pending(space: Space, exp_dir: Path, search: pd.DataFrame) -> int:
    """How many (config, seed) runs of the final stage are not yet in final.parquet."""
    if space.final is None:
        return 0
    top = final_stage.select_top(search, space)
    if top.empty:
        return 0
    done = final_stage.done_pairs(exp_dir / lb.FINAL_FILE)
    return sum(final_stage.pair_of(p) not in done for p in final_stage.final_points(top, space))


def run_search(exp: Experiment, resume: bool) -> pd.DataFrame:
    """The search stage; its leaderboard (also when interrupted, before `Interrupted` is raised)."""
    space, exp_dir = exp.space, exp.exp_dir
    if resume:
        frame = completed_search(space, exp_dir)
        if frame is not None:
            print(f"sedtune: the search stage of {exp_dir} is complete ({len(frame)} trials); not rerun", flush=True)
            return frame
    if space.groups:
        return run_group_searches(exp, resume)
    storage = exp.remote or exp_dir.parent
    frame, interrupted = fit_search(exp, space, resume, str(storage), exp_dir.name, exp_dir.name, "search")
    lb.write_parquet_atomic(frame, exp_dir / lb.SEARCH_FILE, exp.metadata("search", mode=space.mode))
    if interrupted:
        raise Interrupted("search")
    return frame


def run_group_searches(exp: Experiment, resume: bool) -> pd.DataFrame:
    """A search per group of a `groups:` space (search.space.groups), one after the other.

    Group G is its own Ray experiment `OUT/NAME/search--G` with its own study `NAME--G`, searcher
    and scheduler; search.parquet (all groups, `group` column) is rewritten after each group. With
    `--resume` a finished group is not rerun and an unfinished one is restored.
    """
    space, exp_dir = exp.space, exp.exp_dir
    path = exp_dir / lb.SEARCH_FILE
    earlier = lb.read_parquet(path) if resume and path.is_file() else pd.DataFrame()
    frames: dict[str, pd.DataFrame] = {}
    if "group" in earlier:
        frames = {str(g): rows for g, rows in earlier.groupby("group", sort=False)}
    metadata = exp.metadata("search", mode=space.mode)
    for group in space.groups:
        kept = frames.get(group.name)
        if kept is not None and len(kept) >= group.num_samples and kept["status"].isin(FINISHED).all():
            print(f"sedtune: group {group.name}: its search is complete ({len(kept)} trials); not rerun", flush=True)
            continue
        print(
            f"sedtune: group {group.name}: "
            + (f"{group.num_samples} trials" if group.searched else "1 trial at its values (nothing searched)"),
            flush=True,
        )
        name = f"search--{group.name}"
        sub = group_space(space, group)
        frame, interrupted = fit_search(exp, sub, resume, exp.ray_dir(), name, f"{exp_dir.name}--{group.name}", name)
        frames[group.name] = frame.assign(group=group.name) if not frame.empty else frame
        combined = sort_leaderboard(pd.concat([f for f in frames.values() if not f.empty], ignore_index=True), space)
        lb.write_parquet_atomic(combined, path, metadata)
        if interrupted:
            raise Interrupted("search")
    return lb.read_parquet(path)


def fit_search(
    exp: Experiment, space: Space, resume: bool, storage: str, name: str, study_name: str, stage_name: str
) -> tuple[pd.DataFrame, bool]:
    """(leaderboard rows, interrupted?) of one search: Ray experiment `storage/name`, Optuna study `study_name`."""
    exp_dir = exp.exp_dir
    trainable = exp.trainable()
    ray_path = join(storage, name) if "://" in storage else str(Path(storage) / name)
    if resume and tune.Tuner.can_restore(ray_path):
        print(f"sedtune: restoring the search in {ray_path}", flush=True)
        stage = restore_tuner(ray_path, trainable, resume_errored=True)
    else:
        printer = exp.printer(stage_name, list(space.params), space.scheduler.max_epochs, space.num_samples)
        stage = new_tuner(
            trainable,
            space,
            storage=storage,
            name=name,
            search_alg=make_search_alg(space, exp.storage, study_name),
            scheduler=make_scheduler(space),
            num_samples=space.num_samples,
            max_concurrent=exp.resources.max_concurrent,
            callbacks=[printer, ConcurrencyMeter(stage_name, exp.resources.at_once(space.num_samples), exp_dir)],
            debug=exp.debug or exp.verbose,
        )
    result_grid = stage.fit()
    frame = search_frame(stage.records(result_grid), space)
    if not frame.empty:
        command = exp.train_command()
        frame["command"] = [command(json.loads(text)) for text in frame["config_json"]]
    if len(space.metrics) > 1 and exp.storage and not space.is_grid and not frame.empty:
        # the multi-objective study's Pareto front (best_trials) is the one the summary and report show
        frame["pareto"] = frame["trial_id"].astype(str).isin(pareto_trial_ids(exp.storage, study_name))
    interrupted = stage.interrupted(result_grid, space.num_samples, exp.signals)
    if not interrupted and exp.storage and not space.is_grid:
        orphans = close_orphans(exp.storage, study_name)
        if orphans:
            print(
                f"sedtune: {orphans} study trial(s) asked for by an earlier, killed driver and never run "
                f"are marked FAIL in {exp.storage}",
                flush=True,
            )
    return frame, interrupted


def run_final(exp: Experiment, search: pd.DataFrame) -> pd.DataFrame | None:
    """The final stage's summary (None without a final stage or a usable search trial)."""
    space, exp_dir = exp.space, exp.exp_dir
    if space.final is None:
        return None
    top = final_stage.select_top(search, space)
    if top.empty:
        print("sedtune: no search trial produced a selection value; skipping the final stage", flush=True)
        return None
    points = final_stage.final_points(top, space)
    final_path = exp_dir / lb.FINAL_FILE
    done = final_stage.done_pairs(final_path)
    remaining = [p for p in points if final_stage.pair_of(p) not in done]
    metadata = exp.metadata("final", final=dataclasses.asdict(space.final), top_configs=list(top["config_id"]))
    if remaining:
        print(
            f"sedtune: final stage: {len(top)} configs x {len(space.final.seeds)} seeds, "
            f"{space.final.epochs} epochs; {len(remaining)} runs to do ({len(points) - len(remaining)} already done); "
            f"{exp.resources.describe(len(remaining), 'final')}",
            flush=True,
        )
        wanted = {final_stage.pair_of(p) for p in remaining}
        name, restore = final_stage.plan_experiment(
            exp_dir, wanted, lambda p: tune.Tuner.can_restore(exp.ray_dir(p.name))
        )
        trainable = exp.trainable()
        if restore:
            stage = restore_tuner(exp.ray_dir(name), trainable, resume_errored=False)
        else:
            printer = exp.printer("final", [], space.final.epochs, len(remaining))
            recorder = final_stage.FinalRecorder(
                str(final_path), metadata, list(space.params), command=exp.train_command()
            )
            stage = new_tuner(
                trainable,
                space,
                storage=exp.ray_dir(),
                name=name,
                search_alg=make_point_searcher(remaining, space.tune_metric, space.mode),
                num_samples=len(remaining),
                max_concurrent=exp.resources.max_concurrent,
                callbacks=[
                    printer,
                    recorder,
                    ConcurrencyMeter("final", exp.resources.at_once(len(remaining)), exp_dir),
                ],
                debug=exp.debug or exp.verbose,
            )
        result_grid = stage.fit()
        if stage.interrupted(result_grid, len(remaining) if not restore else None, exp.signals):
            raise Interrupted("final")
    if space.final.postprocess and final_path.is_file():
        from .postprocess import tune_final

        tune_final(final_path, metadata)  # the second phase (search.postprocess), runs at once, one per CPU
    final = lb.read_parquet(final_path) if final_path.is_file() else pd.DataFrame()
    summary = final_stage.summary_frame(final, list(top["config_id"]), control=space.final.control is not None)
    lb.write_parquet_atomic(summary, exp_dir / lb.FINAL_SUMMARY_FILE, {**metadata, "stage": "final_summary"})
    return summary
