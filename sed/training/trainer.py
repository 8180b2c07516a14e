"""The one training loop shared by `python -m sed.train`, the tests and every Ray trial.

`Trainer(config)` makes the process-wide settings (`sed.training.runtime.configure_process`),
takes the prepared data (`sed.data.prepare.prepare_data`: the embedded
dataset unless `data` is given, cached features, the scaler), builds the CRNN
(and the EMA teacher for `regularization=mt` only), then trains epoch by epoch:

    for each epoch: mixed batches (sed.training.batches: weak 1/4, unlabeled 1/2, strong 1/4)
        -> compute_losses (sed.training.objectives) -> Adam step (lr x ramp-up) -> EMA update
    -> validation on the held-out 20 % of the synthetic set (sed.eval.evaluation:
       event macro F1; PSDS too with `val_psds`) -> model selection -> callback / TensorBoard.

This module holds the loop and the model selection; the batches, the
evaluation and the checkpoint format (`sed.training.checkpoint`: the complete state,
so a resumed run continues exactly) are their own modules. A NaN or infinite
loss stops training with `TrainingDiverged` naming the step and the loss
terms, instead of training on garbage.
"""

from __future__ import annotations

import copy
import random as _random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sed.augment.perturb import LogMelSpace
from sed.config import TrainConfig
from sed.data.prepare import PreparedData, prepare_data
from sed.errors import ConfigError
from sed.eval.evaluation import Evaluator
from sed.eval.scores import best_index
from sed.nn.model import CRNN, build_model, count_parameters
from sed.training import checkpoint
from sed.training.batches import MixedBatches
from sed.training.cost import StepCost
from sed.training.fast_step import FastStep
from sed.training.fast_step import resolve as resolve_fast_step
from sed.training.progress import ScalarLog, format_progress
from sed.training.runtime import configure_process, seed_everything
from sed.training.step import TrainingDiverged, eager_step, graph_epoch

__all__ = ["Trainer", "TrainingDiverged", "prepare_data", "PreparedData"]


NO_STEP_MESSAGE = (
    "an epoch had no training step: the smallest data part is smaller than its batch share; "
    "lower batch_size or the weak/strong fractions"
)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        data_root: Path | str | None = None,
        cache_dir: Path | str | None = None,
        log_dir: Path | str | None = None,
        data: PreparedData | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config.validate()
        self.progress = progress
        self.device = configure_process(config)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.data = data or prepare_data(config, data_root, self.cache_dir, progress=progress)
        if self.data.feature_config.n_mels != config.n_mels:
            raise ConfigError(
                f"n_mels={config.n_mels}, but the prepared data's features have {self.data.feature_config.n_mels} "
                "mel bands; prepare the data with this config (prepare_data(config, ...)) or set n_mels to match"
            )
        self.labels = self.data.labels
        n_classes = len(self.labels)

        seed_everything(config.seed)
        self.student = build_model(config, n_classes).to(self.device)
        self.teacher: CRNN | None = None
        if config.has_teacher:
            # Initialised independently, as in the reference (eq. 1's first update mixes half and half).
            self.teacher = build_model(config, n_classes).to(self.device).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=config.lr, betas=(0.9, 0.999))
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=config.amp and self.device.type == "cuda")
        #: How the input was made from the linear mel (snr_noise goes back through it).
        self.input_space = LogMelSpace(self.data.scaler, self.data.feature_config.top_db)
        self.batches = MixedBatches(self.data, config, self.device, self.data.scaler)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.evaluator = Evaluator(self.data, config, self.device, self.amp_dtype)
        self.rng = _random.Random(config.seed + 17)
        self.epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.best_state: dict[str, Tensor] | None = None
        self.trainable_parameters = count_parameters(self.student)
        self.cost = StepCost([self.student, self.teacher], self.optimizer)  # training FLOPs per step
        self.log = ScalarLog(log_dir)
        #: The CUDA-graph step (sed.training.fast_step), None for the eager step (always on the CPU).
        self.fast: FastStep | None = None
        if resolve_fast_step(config, self.device) == "graph":
            s, t, opt, space = self.student, self.teacher, self.optimizer, self.input_space
            self.fast = FastStep(s, t, opt, config, self.rng, space, self.rampup_steps, capacity=self.steps_per_epoch)

    # -- training ------------------------------------------------------------
    @property
    def rampup_steps(self) -> float:
        return self.config.rampup_epochs * self.steps_per_epoch

    def train_epoch(self) -> dict[str, Any]:
        """Train one epoch, validate, select; returns the epoch's metrics."""
        cfg = self.config
        start = time.perf_counter()
        self.student.train()
        if self.teacher is not None:
            self.teacher.train()
        sums: dict[str, float] = {}
        n_steps = 0
        rampup = 0.0
        if self.fast is not None:  # CUDA graph: the loss terms are read back at the epoch's end
            position = (self.epoch + 1, self.step, self.rampup_steps)
            n_steps, rampup = graph_epoch(cfg, self.fast, self.batches, position, partial(self._log_step, sums))
        else:
            models, amp = (self.student, self.teacher), (self.device.type, self.amp_dtype)
            for batch in self.batches:
                position = (self.epoch + 1, self.step, self.rampup_steps)
                values, rampup = eager_step(
                    cfg, models, self.optimizer, self.grad_scaler, batch, position, self.rng, self.input_space, amp
                )
                self._log_step(sums, self.step + 1, values)
                n_steps += 1
        if n_steps == 0:
            raise ConfigError(NO_STEP_MESSAGE)
        self.epoch += 1
        metrics: dict[str, Any] = {k: v / n_steps for k, v in sums.items()}
        metrics.update(
            epoch=self.epoch,
            step=self.step,
            steps=n_steps,
            lr=cfg.lr * rampup,
            rampup=rampup,
            consistency_weight=cfg.consistency_weight * rampup,
            train_seconds=time.perf_counter() - start,
            **self.cost.metrics(),  # training cost so far, device-independent
        )
        val_start = time.perf_counter()
        val = self.validate()
        metrics["val_seconds"] = time.perf_counter() - val_start
        metrics.update(val)
        self._select(val)
        metrics["best_epoch"] = self.best_epoch
        # the selected epoch's F1 (best_<score> is the best so far: search.trainable.with_best_so_far)
        metrics["selected_val_macro_f1"] = self.best_metrics.get("val_macro_f1")
        metrics["epoch_seconds"] = time.perf_counter() - start
        self.history.append({k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None})
        self.log.epoch(self.epoch, metrics)
        return metrics

    def _log_step(self, sums: dict[str, float], step: int, values: dict[str, float]) -> None:
        """Count a finished step (`step` = the steps done after it) and log its loss terms."""
        self.step = step
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        self.log.step(self.step, values)

    def _select(self, val: dict[str, Any]) -> None:
        """Model selection: keep the weights of the epoch with the best `config.selection_metric`
        (validation event F1 by default, as the reference; a NaN or missing score never wins,
        ties keep the earlier epoch)."""
        key = self.config.selection_metric
        if self.best_epoch is None or best_index([self.best_metrics.get(key), val.get(key)]) == 1:
            self.best_epoch = self.epoch
            self.best_metrics = {k: v for k, v in val.items() if isinstance(v, (int, float)) or v is None}
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.selected_model().state_dict().items()}

    def fit(
        self, epochs: int | None = None, callback: Callable[[dict[str, Any]], object] | None = None
    ) -> dict[str, Any]:
        """Train until `epochs` (default config.epochs) epochs are done in total."""
        target = epochs if epochs is not None else self.config.epochs
        metrics: dict[str, Any] = {}
        while self.epoch < target:
            metrics = self.train_epoch()
            if self.progress:
                print(format_progress(metrics, target), file=sys.stderr, flush=True)
            if callback is not None:
                callback(metrics)
        return metrics

    def close(self) -> None:
        self.log.close()

    # -- models and their scores ----------------------------------------------
    def selected_model(self) -> CRNN:
        if self.config.select == "teacher":
            assert self.teacher is not None
            return self.teacher
        return self.student

    def predict(self, split_name: str, model: CRNN | None = None, batch_size: int = 32) -> np.ndarray:
        """Frame probabilities [N, 157, C] of a split (the selected model unless given), in eval mode."""
        return self.evaluator.predict(model or self.selected_model(), split_name, batch_size)

    def validate(self) -> dict[str, Any]:
        """Event F1 (and PSDS if `val_psds`) of the selected model on the selection split."""
        return self.evaluator.validate(self.selected_model())

    def evaluate(
        self,
        split_name: str = "public_eval",
        use_best: bool = True,
        prefix: str | None = None,
        out_dir: Path | str | None = None,
    ) -> dict[str, Any]:
        """Full metrics on a split of the model selected on `config.selection_metric` (`use_best`), student or
        teacher per `config.select` (reported as `model`). With `out_dir`, the split's DCASE-format
        files (sed.eval.outputs) go there too."""
        return self.evaluator.evaluate(
            self._model_to_score(use_best),
            split_name,
            prefix,
            self.best_epoch if use_best else self.epoch,
            None if out_dir is None else Path(out_dir),
        )

    def write_outputs(self, split_name: str, out_dir: Path | str, use_best: bool = True) -> Path:
        """The DCASE-format files (sed.eval.outputs) of the selected model on a split, without scoring it."""
        model = self._model_to_score(use_best)
        return self.evaluator.write_outputs(split_name, self.evaluator.predict(model, split_name), Path(out_dir))

    def _model_to_score(self, use_best: bool) -> CRNN:
        """The selected model, with the weights of the selected epoch if `use_best` (a copy)."""
        model = self.selected_model()
        if use_best and self.best_state is not None:
            model = copy.deepcopy(model)
            model.load_state_dict(self.best_state)
        return model

    # -- state (the file format is sed.training.checkpoint's) -------------------------
    def state_dict(self) -> dict[str, Any]:
        """The full state as a `weights_only`-loadable dict (a resumed run continues exactly)."""
        rng = {**checkpoint.global_rng_state(), "python_trainer": checkpoint.json_safe(self.rng.getstate())}
        rng["samplers"] = self.batches.generator_states()
        return {
            "format": checkpoint.CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "labels": list(self.labels),
            "epoch": self.epoch,
            "step": self.step,
            "student": self.student.state_dict(),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict(),
            "best_epoch": self.best_epoch,
            "best_metrics": dict(self.best_metrics),
            "best_state": self.best_state,
            "history": list(self.history),
            "scaler": checkpoint.scaler_entry(self.data.scaler),
            "rng": rng,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the trainer back into the state `state_dict` took (refusing another format or label set)."""
        checkpoint.check_state(state, self.labels, has_teacher=self.teacher is not None)
        self.student.load_state_dict(state["student"])
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.grad_scaler.load_state_dict(state["grad_scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_epoch, self.best_metrics = state["best_epoch"], dict(state["best_metrics"])
        self.best_state = state["best_state"]
        self.history = list(state["history"])
        self.cost.resume(self.history)
        rng = state["rng"]
        checkpoint.restore_global_rng(rng)
        self.rng.setstate(checkpoint.from_json_safe(rng["python_trainer"]))
        self.batches.load_generator_states(rng["samplers"])
        if self.fast is not None:
            self.fast.invalidate()  # the optimizer's state tensors are new: capture again

    def save_checkpoint(self, directory: Path | str) -> Path:
        """Write the full state atomically to `directory/trainer_state.pt`."""
        return checkpoint.save_checkpoint(self.state_dict(), directory)

    def load_checkpoint(self, directory: Path | str) -> None:
        self.load_state_dict(checkpoint.load_checkpoint(directory, self.device))

    def save_best_model(self, path: Path | str) -> Path:
        """The selected best weights with config and labels (weights_only loadable)."""
        state = self.best_state if self.best_state is not None else self.selected_model().state_dict()
        return checkpoint.save_best_model(
            path,
            config=self.config.to_dict(),
            labels=list(self.labels),
            model=self.config.select,
            epoch=self.best_epoch,
            selection=self.best_metrics,
            state_dict=state,
            scaler=self.data.scaler,
            features=self.data.feature_config.to_dict(),
        )
