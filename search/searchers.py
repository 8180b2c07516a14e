"""Who proposes the trials and who stops them: Optuna (TPE or random) or a fixed list, and ASHA.

- sampled spaces: `OptunaSearch` over `Space.define_by_run` (conditional
  parameters are suggested only when their condition holds), seeded, its
  study in a real storage (`search.study_storage`; each study trial names
  its Ray trial in the user attribute `ray_trial_id`); a configuration
  already run is not trained again (`searcher.skip_repeats`, on for TPE:
  the study is told the earlier result); with two metrics
  a multi-objective study (metric and mode lists: MOTPE), whose
  `best_trials` are the Pareto front;
- grid spaces and the final stage: `PointListSearcher`, each given config
  once, in order (Optuna rejects `tune.grid_search`);
- `ASHAScheduler` on `training_iteration` (= epochs), or FIFO. ASHA
  compares trials at its rungs on the first metric only (the Tuner's
  metric), also when the study has two objectives; with
  `scheduler.rung_metric` on that score's best so far instead
  (`RungMetricASHA`), while Optuna and the Tuner keep the space's metric.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from . import trial_spec
from .space import Space


def make_point_searcher(points: Sequence[Mapping[str, Any]], metric: str, mode: str):
    """A Tune searcher that hands out a fixed list of configs once each (grid, final stage)."""
    return PointListSearcher(points=list(points), metric=metric, mode=mode)


class PointListSearcher(Searcher):
    """Suggests each given config once, in order, then FINISHED. Resumable (save/restore)."""

    def __init__(self, points: list[dict[str, Any]], metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.points = [dict(p) for p in points]
        self.next_index = 0

    def suggest(self, trial_id: str):
        if self.next_index >= len(self.points):
            return Searcher.FINISHED
        point = self.points[self.next_index]
        self.next_index += 1
        return dict(point)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"points": self.points, "next_index": self.next_index}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.points = state["points"]
        self.next_index = state["next_index"]


#: Proposals in a row a trial may skip: in a discrete space whose every configuration has run, the
#: sampler goes on proposing its best, and the search must still go on (it then runs the repeat).
MAX_REPEAT_DRAWS = 20


def config_key(config: Mapping[str, Any]) -> str:
    """One string per distinct configuration (what two trials that train alike share)."""
    return json.dumps(config, sort_keys=True, default=str)


class RecordingOptunaSearch(OptunaSearch):
    """OptunaSearch that writes each Ray trial id into its study trial (user attribute `ray_trial_id`).

    With `skip_repeats`, a configuration that a finished trial of this search
    already trained is not trained again: every trial of a search shares the
    training seed, so the rerun would only repeat that trial's curve (to the
    last digit on the same device). Optuna's samplers do not avoid repeats
    (optuna/optuna#2021; Ray Tune leaves it to each searcher,
    ray-project/tune-sklearn#207), and TPE proposes them once it has
    converged on the best configurations of a discrete space. A proposal of
    a configuration already run is told that trial's outcome at once (a
    study trial with the user attribute `repeat_of`: what the rerun would
    have told it) and the sampler proposes again, up to `MAX_REPEAT_DRAWS`
    times, after which the repeat runs. The study thus sees the sequence it
    would have seen had the reruns been trained, without their epochs. A
    configuration still running when it is proposed again runs twice.
    """

    def __init__(self, *args: Any, skip_repeats: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.skip_repeats = skip_repeats
        #: config key -> (the Ray trial that ran it, its final metric values, whether it failed)
        self.outcomes: dict[str, tuple[str, dict[str, Any], bool]] = {}
        self.trial_keys: dict[str, str] = {}
        self.repeats_skipped = 0

    def suggest(self, trial_id: str):
        skipped: list[str] = []
        for draw in range(MAX_REPEAT_DRAWS + 1):
            config = super().suggest(trial_id)
            if not isinstance(config, dict):
                return config
            known = self.outcomes.get(config_key(config)) if self.skip_repeats else None
            if known is None or draw == MAX_REPEAT_DRAWS:
                break
            earlier, values, error = known
            repeat = self._ot_trials.pop(trial_id)  # OptunaSearch's map: the next draw asks anew
            repeat.set_user_attr("repeat_of", earlier)
            self._ot_trials[f"{trial_id}~repeat{draw}"] = repeat
            super().on_trial_complete(f"{trial_id}~repeat{draw}", result=values or None, error=error)
            skipped.append(earlier)
        if skipped:
            self.repeats_skipped += len(skipped)
            ran = ", ".join(sorted(set(skipped)))
            print(
                f"[search] {trial_id}: the searcher proposed {len(skipped)} configuration(s) already run "
                f"(by {ran}); told it those trials' results instead of training them again"
                + (f"; {MAX_REPEAT_DRAWS} in a row, so the last one runs again" if known is not None else ""),
                flush=True,
            )
        self.trial_keys[trial_id] = config_key(config)
        ot_trial = self._ot_trials.get(trial_id)  # OptunaSearch's own map, kept in its saved state
        if ot_trial is not None:
            ot_trial.set_user_attr("ray_trial_id", trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result=result, error=error)
        key = self.trial_keys.get(trial_id)
        if key is not None and key not in self.outcomes:
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            values = {m: result[m] for m in metrics if result and result.get(m) is not None}
            self.outcomes[key] = (trial_id, values, error)


def make_search_alg(space: Space, storage: str | None = None, study_name: str | None = None):
    """OptunaSearch (TPE or random, seeded, define-by-run) or a point list for grid spaces.

    `storage`: where the study lives (`search.study_storage.storage_location`; None: in memory),
    `study_name`: its name (default: the space's name).
    """
    if space.is_grid:
        points = [
            {**space.constants(), **point.overrides, trial_spec.LABEL: point.label, **space.meta}
            for point in space.grid_configs()
        ]
        return make_point_searcher(points, space.tune_metric, space.mode)
    import optuna

    from .study_storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if space.searcher.kind == "optuna-random":
        sampler = optuna.samplers.RandomSampler(seed=space.searcher.seed)
    else:
        kwargs: dict[str, Any] = {"seed": space.searcher.seed}
        if space.searcher.n_startup_trials is not None:
            kwargs["n_startup_trials"] = space.searcher.n_startup_trials
        sampler = optuna.samplers.TPESampler(**kwargs)
    # two metrics: a true multi-objective study (its best_trials are the Pareto front); ASHA,
    # built with the Tuner's single metric, still stops trials on the first one only
    multi = len(space.metrics) > 1
    return RecordingOptunaSearch(
        space=space.define_by_run,
        metric=list(space.tune_metrics) if multi else space.tune_metric,
        mode=[space.mode] * len(space.metrics) if multi else space.mode,
        sampler=sampler,
        study_name=study_name or space.name,
        storage=open_storage(storage) if storage else None,
        skip_repeats=space.searcher.skip_repeats,
    )


class RungMetricASHA(ASHAScheduler):
    """ASHA that compares trials on its own score, not the Tuner's metric.

    Tune hands every scheduler the Tuner's metric (`set_search_properties`) and
    refuses one built with a metric of its own; this one keeps the score it was
    built with and accepts the call, so the searcher, the result grid and the
    leaderboards stay on the space's metric while the rungs read another
    (`scheduler.rung_metric`).
    """

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True


def make_scheduler(space: Space):
    """ASHA over the space's epochs (`training_iteration`), or FIFO."""
    from ray.tune.schedulers import FIFOScheduler

    if space.scheduler.kind == "asha":
        kwargs: dict[str, Any] = dict(
            time_attr="training_iteration",
            max_t=space.scheduler.max_epochs,
            grace_period=space.scheduler.grace_period,
            reduction_factor=space.scheduler.reduction_factor,
        )
        if space.rung_tune_metric != space.tune_metric:
            return RungMetricASHA(metric=space.rung_tune_metric, mode="max", **kwargs)
        return ASHAScheduler(**kwargs)
    return FIFOScheduler()
