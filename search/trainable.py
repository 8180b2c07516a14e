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

A `TrainingDiverged` (NaN/inf loss) or any other exception fails the trial;
its type and message are written to `failure.json` in the trial directory
(read back into the leaderboard's `error` column) before re-raising.

TensorBoard: the trainer writes its scalars (`train/*`, `val/*`) into the
trial directory; this module adds the HParams session (hyperparameters of the
trial, metrics `val/val_macro_f1`, `train/best_val_macro_f1`, `eval/*`) so
that `tensorboard --logdir OUT/NAME` shows the HParams table.

Files: `tune.get_context().get_trial_dir()` is the trial's local working
folder (Ray syncs it to `OUT/NAME/trial_<id>/` at every checkpoint and at the
end: `search.run` sets `SyncConfig(sync_artifacts=True)`, needed because
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

FAILURE_FILE = "failure.json"
EVAL_FILE = "eval.json"
#: Folder of a final trial with its DCASE-format files and best_model.pt (sed.eval.outputs).
OUTPUTS_DIR = "outputs"
#: Metric tags (scalars written by the trainer or here) shown in the HParams table.
HPARAM_METRICS: tuple[str, ...] = (
    "val/val_macro_f1",
    "val/val_psds",
    "train/best_val_macro_f1",
    "eval/eval_macro_f1",
    "eval/eval_psds",
    "eval/eval_psds_ct",
    "eval/eval_psds_macro",
    "eval/eval_psds1",
    "eval/eval_psds2",
)


def split_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(TrainConfig overrides, meta keys) of a trial config."""
    overrides = {k: v for k, v in config.items() if not k.startswith("_")}
    meta = {k: v for k, v in config.items() if k.startswith("_")}
    return overrides, meta


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
    tmp = trial_dir / f".{FAILURE_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(trial_dir / FAILURE_FILE)


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

    from sed.config import TrainConfig, apply_overrides
    from sed.training.trainer import Trainer

    trial_dir = Path(tune.get_context().get_trial_dir())
    trial_dir.mkdir(parents=True, exist_ok=True)
    overrides, meta = split_config(config)
    evaluate = bool(meta.get("_evaluate", False))
    trainer = None
    hp_writer = None
    session_end = None
    try:
        cfg = apply_overrides(TrainConfig(), {**dict(runtime_overrides or {}), **overrides})
        hp_writer, session_end = write_hparams_session(
            trial_dir, {**overrides, **{k.lstrip("_"): v for k, v in meta.items()}}
        )
        from .prepared import load_for_trial

        trainer = Trainer(
            cfg,
            data=load_for_trial(prepared_dir, cfg, data_root, cache_dir),
            data_root=Path(data_root) if data_root else None,
            cache_dir=Path(cache_dir) if cache_dir else None,
            log_dir=trial_dir,
            progress=False,
        )
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                trainer.load_checkpoint(directory)
        reported = False
        while trainer.epoch < cfg.epochs:
            metrics = numeric_metrics(trainer.train_epoch())
            if evaluate and trainer.epoch >= cfg.epochs:
                metrics.update(_evaluate(trainer, trial_dir, hp_writer))
            _report(trainer, metrics)
            reported = True
        if evaluate and not reported:
            # Restored after the last epoch but before its report reached Tune.
            last = numeric_metrics(trainer.history[-1]) if trainer.history else {}
            last.update(_evaluate(trainer, trial_dir, hp_writer))
            _report(trainer, last)
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            _write_failure(trial_dir, exc, None if trainer is None else trainer.epoch)
        raise
    finally:
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
    (trial_dir / EVAL_FILE).write_text(json.dumps(record, indent=1, default=str))
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
    for key in ("val_macro_f1", "val_psds", "val_psds1"):
        if isinstance(best.get(key), (int, float)):
            out[f"selected_{key}"] = float(best[key])
    if writer is not None:
        for key, value in out.items():
            if key.startswith("eval_") and isinstance(value, float):
                writer.add_scalar(f"eval/{key}", value, trainer.epoch)
        writer.flush()
    return out


#: Validation scores whose best-so-far is reported as `best_<key>` (Space.tune_metric).
BEST_SO_FAR_KEYS: tuple[str, ...] = ("val_macro_f1", "val_psds", "val_psds1")


def with_best_so_far(metrics: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """`metrics` plus `best_<key>`: the maximum of each validation score over the epochs so far.

    Computed from the trainer's history (kept in its checkpoint), so a resumed
    trial reports the same number as an uninterrupted one.
    """
    out = dict(metrics)
    for key in BEST_SO_FAR_KEYS:
        values = [float(row[key]) for row in history if isinstance(row.get(key), (int, float))]
        if values:
            out[f"best_{key}"] = max(values)
    return out


def _report(trainer: Any, metrics: dict[str, Any]) -> None:
    from ray import tune

    metrics = with_best_so_far(metrics, trainer.history)
    with tempfile.TemporaryDirectory(prefix="sedtune-ckpt-") as directory:
        trainer.save_checkpoint(directory)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
