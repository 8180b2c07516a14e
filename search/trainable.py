"""The Ray Tune function trainable: one trial = one `sed.training.trainer.Trainer` run.

Per epoch it calls `Trainer.train_epoch()` (train, then validate on the
held-out 20 % of the synthetic strong set, docs/design.md "Trainable") and reports
the epoch's numeric metrics (`val_macro_f1`, `val_psds` when computed,
losses, lr, ...) with a checkpoint of the trainer's full state, so that ASHA
can stop the trial after any epoch and `--resume` continues it from the last
epoch exactly (`Trainer.load_checkpoint`).

Trial configs are flat dicts of `TrainConfig` overrides; keys starting with
`_` are meta keys of the search (`_label`, `_config_id`, `_evaluate`,
`_search_trial_id`, `_rank`) and are not passed to the trainer. With
`_evaluate: true` (final stage) the last epoch's report also carries the
public-evaluation metrics of the model selected on the trial's
`selection_metric` (`Trainer.evaluate('public_eval')`: F1, PSDS at 50
operating points, threshold-free PSDS1/PSDS2 and intersection F1).

Every report also carries the trial's compute so far (`search.trial_compute`:
`energy_kwh`, `energy_source`, `macs_per_10s`, `train_steps`).

A `TrainingDiverged` (NaN/inf loss) or any other exception fails the trial;
its type and message are written to `failure.json` in the trial directory
(read back into the leaderboard's `error` column) before re-raising.

TensorBoard: the trainer writes its scalars (`train/*`, `val/*`) into the
trial directory; this module adds the HParams session (hyperparameters of the
trial, metrics `val/val_macro_f1`, `train/selected_val_macro_f1` (the selected epoch's F1), `eval/*`) so
that `tensorboard --logdir OUT/NAME` shows the HParams table.

Files: `tune.get_context().get_trial_dir()` is the trial's local working
folder (Ray syncs it to `OUT/NAME/trial_<id>/` at every checkpoint and at the
end: `search.tuner.new_tuner` sets `SyncConfig(sync_artifacts=True)`, needed because
actors are reused between trials). Values the driver needs at once (eval
per-class F1, metric versions) therefore travel in the report itself.
Paths given to the trainable are absolute: Ray runs each trial in its own
working directory.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sed.eval.scores import SCORES, VALIDATION_SCORE_NAMES, best_index
from sed.io import write_json

from . import trial_spec

FAILURE_FILE = "failure.json"
EVAL_FILE = "eval.json"
#: Folder of a final trial with its DCASE-format files and best_model.pt (sed.eval.outputs).
OUTPUTS_DIR = "outputs"
#: Metric tags (scalars written by the trainer or here) shown in the HParams table.
HPARAM_METRICS: tuple[str, ...] = (
    "val/val_macro_f1",
    "val/val_psds",
    "train/selected_val_macro_f1",
    "eval/eval_macro_f1",
    "eval/eval_psds",
    "eval/eval_psds_ct",
    "eval/eval_psds_macro",
    "eval/eval_psds1",
    "eval/eval_psds2",
)


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """Only finite-or-NaN numbers (no None, dicts, strings): what Tune and ASHA can compare."""
    out: dict[str, float | int] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, (int, float)):
            out[key] = value
    return out


def _hparam_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "None"
    return value


def write_hparams_session(log_dir: Path, hparams: Mapping[str, Any]) -> Any:
    """Start a TensorBoard HParams session in `log_dir` (the trial's run); returns the writer."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    clean = {k: _hparam_value(v) for k, v in hparams.items()}
    metric_dict = {tag: math.nan for tag in HPARAM_METRICS}
    experiment, session_start, session_end = hparams_summary(clean, metric_dict)
    writer = SummaryWriter(str(log_dir), filename_suffix=".hparams")
    writer.file_writer.add_summary(experiment)
    writer.file_writer.add_summary(session_start)
    writer.flush()
    return writer, session_end


def _write_failure(trial_dir: Path, exc: BaseException, epoch: int | None) -> None:
    record = {
        "type": type(exc).__name__,
        "message": str(exc),
        "epoch": epoch,
        "traceback": traceback.format_exc(limit=8),
        "time": time.time(),
    }
    write_json(trial_dir / FAILURE_FILE, record, indent=1)


def train_sed(
    config: dict[str, Any],
    data_root: str | None = None,
    cache_dir: str | None = None,
    runtime_overrides: Mapping[str, Any] | None = None,
    prepared_dir: str | None = None,
) -> None:
    """Ray Tune function trainable (use with `tune.with_parameters`).

    `runtime_overrides` (e.g. `num_threads` = the trial's CPUs) are applied
    before the trial config, which wins. `prepared_dir`: the driver's
    prepared data (`search.prepared`), read instead of preparing the data
    again when it holds this trial's dataset.
    """
    from ray import tune

    from sed.training.trainer import Trainer

    from .placement import trial_placement
    from .trial_compute import compute_metrics, energy_offset, start_meter

    placement = trial_placement(time.time())
    trial_dir = Path(tune.get_context().get_trial_dir())
    trial_dir.mkdir(parents=True, exist_ok=True)
    overrides, meta = trial_spec.split(config)
    evaluate = bool(meta.get(trial_spec.EVALUATE, False))
    trainer = None
    meter = None
    hp_writer = None
    session_end = None
    try:
        cfg = trial_spec.train_config(config, runtime_overrides)
        hp_writer, session_end = write_hparams_session(
            trial_dir, {**overrides, **{k.lstrip("_"): v for k, v in meta.items()}}
        )
        from .prepared import load_for_trial, node_cache_dir

        cache_dir = node_cache_dir(cache_dir)

        trainer = Trainer(
            cfg,
            data=load_for_trial(prepared_dir, cfg, data_root, cache_dir),
            data_root=Path(data_root) if data_root else None,
            cache_dir=Path(cache_dir) if cache_dir else None,
            log_dir=trial_dir,
            progress=False,
        )
        checkpoint = tune.get_checkpoint()
        offset = 0.0
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                trainer.load_checkpoint(directory)
                offset = energy_offset(directory)
        meter = start_meter(cfg, offset)
        reported = False
        while trainer.epoch < cfg.epochs:
            metrics = numeric_metrics(trainer.train_epoch())
            if evaluate and trainer.epoch >= cfg.epochs:
                metrics.update(_evaluate(trainer, trial_dir, hp_writer))
            _report(trainer, {**metrics, **compute_metrics(trainer, meter), **placement})
            reported = True
        if evaluate and not reported:
            # Restored after the last epoch but before its report reached Tune.
            last = numeric_metrics(trainer.history[-1]) if trainer.history else {}
            last.update(_evaluate(trainer, trial_dir, hp_writer))
            _report(trainer, {**last, **compute_metrics(trainer, meter), **placement})
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            _write_failure(trial_dir, exc, None if trainer is None else trainer.epoch)
        raise
    finally:
        if meter is not None:
            meter.stop()
        if trainer is not None:
            trainer.close()
        if hp_writer is not None:
            hp_writer.file_writer.add_summary(session_end)
            hp_writer.close()


def _evaluate(trainer: Any, trial_dir: Path, writer: Any) -> dict[str, Any]:
    """Public-eval metrics of the selected best model; full record kept in eval.json; its
    best_model.pt and DCASE-format files (public eval and DESED validation) in outputs/."""
    start = time.perf_counter()
    outputs = trial_dir / OUTPUTS_DIR
    scores = trainer.evaluate("public_eval", out_dir=outputs / "public_eval")
    trainer.write_outputs("validation", outputs / "validation")
    trainer.save_best_model(outputs / "best_model.pt")
    seconds = time.perf_counter() - start
    record = {k: v for k, v in scores.items()}
    record["eval_seconds"] = seconds
    write_json(trial_dir / EVAL_FILE, record, indent=1)
    out = {
        k: float(v)
        for k, v in scores.items()
        if k.startswith("eval_") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    out["eval_seconds"] = seconds
    # text values travel with the report to the driver (the trial folder is synced later)
    out["eval_per_class_f1_json"] = json.dumps(scores.get("eval_per_class_f1"), default=str)
    out["metric_versions_json"] = json.dumps(scores.get("metric_versions"), sort_keys=True, default=str)
    out["model_epoch"] = float(scores.get("model_epoch") or 0)
    # validation scores of the model that was scored on eval (selected on config.selection_metric)
    best = getattr(trainer, "best_metrics", {}) or {}
    for key in VALIDATION_SCORE_NAMES:
        if isinstance(best.get(key), (int, float)):
            out[f"selected_{key}"] = float(best[key])
    if writer is not None:
        for key, value in out.items():
            if key.startswith("eval_") and isinstance(value, float):
                writer.add_scalar(f"eval/{key}", value, trainer.epoch)
        writer.flush()
    return out


#: Validation scores whose best-so-far is reported as `best_<key>` (Space.tune_metric).
BEST_SO_FAR_KEYS: tuple[str, ...] = VALIDATION_SCORE_NAMES


def with_best_so_far(metrics: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """`metrics` plus `best_<key>`: the best of each validation score over the epochs so far.

    Picked as the trainer's model selection picks (`sed.eval.scores.best_index`: a NaN never
    wins; NaN when every epoch's value is NaN). Computed from the trainer's history (kept in
    its checkpoint), so a resumed trial reports the same number as an uninterrupted one.
    """
    out = dict(metrics)
    for key in BEST_SO_FAR_KEYS:
        values = [float(row[key]) for row in history if isinstance(row.get(key), (int, float))]
        if values:
            index = best_index(values, SCORES[key].mode)
            out[f"best_{key}"] = values[index] if index is not None else math.nan
    return out


def _report(trainer: Any, metrics: dict[str, Any]) -> None:
    from ray import tune

    from .trial_compute import save_energy

    metrics = with_best_so_far(metrics, trainer.history)
    metrics["reported_at"] = time.time()  # the trial's place and times: search.placement
    with tempfile.TemporaryDirectory(prefix="sedtune-ckpt-") as directory:
        trainer.save_checkpoint(directory)
        save_energy(directory, metrics)  # a retried attempt adds to it (search.trial_compute)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
