"""The one trainer shared by `python -m sed.train`, the tests and every Ray trial.

`Trainer(config)` loads the dataset (the embedded one unless `data` is given),
reads the cached log-mel features (computed once per dataset and settings by
`sed.features.FeatureStore`, shared by every process on the machine), fits the
per-band scaler on the training parts, builds the CRNN (and the EMA teacher
for `regularization=mt` only), then trains epoch by epoch:

    for each epoch: mixed batches (weak 1/4, unlabeled 1/2, strong 1/4) ->
        compute_losses (sed.objectives) -> Adam step (lr x ramp-up) -> EMA update
    -> validation on the held-out 20 % of the synthetic set (event macro F1;
       PSDS too with `val_psds`) -> model selection -> callback / TensorBoard.

`save_checkpoint`/`load_checkpoint` hold the complete state (student,
teacher, optimiser, AMP scaler, every RNG stream, epoch, step, best model,
history), so a resumed run continues exactly as if it had not stopped.
Checkpoints load with `torch.load(weights_only=True)`.

A NaN or infinite loss stops training with `TrainingDiverged` naming the
step and the loss terms, instead of training on garbage.
"""

from __future__ import annotations

import copy
import math
import os
import random as _random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from .config import TrainConfig
from .constants import N_OUT_FRAMES
from .data.desed import DesedDataset, Split, load_desed
from .data.synth import ensure_embedded
from .features import FeatureConfig, FeatureStore, Scaler, fit_scaler
from .host_memory import reuse_freed_memory
from .metrics import evaluate_predictions, metric_versions
from .model import CRNN, build_model, count_parameters
from .objectives import Batch, compute_losses, sigmoid_rampup, update_ema
from .perturb import LogMelSpace

CHECKPOINT_FILE = "trainer_state.pt"
CHECKPOINT_FORMAT = 1
TRAIN_PARTS = ("weak", "unlabeled", "synthetic_train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and terms."""


# ----------------------------------------------------------------------------- data
@dataclass
class PreparedData:
    """Everything a trial reads: the dataset, memory-mapped features, targets, scaler."""

    root: Path
    dataset: DesedDataset
    labels: tuple[str, ...]
    features: dict[str, np.ndarray]
    scaler: Scaler

    def split(self, name: str) -> Split:
        return self.dataset.splits[name]


def resolve_data_root(config: TrainConfig, data_root: Path | str | None, cache_dir: Path | None) -> Path:
    if data_root is not None:
        return Path(data_root).expanduser().resolve()
    if config.data:
        return Path(config.data).expanduser().resolve()
    return ensure_embedded(config.embedded_size, seed=config.embedded_seed, cache_dir=cache_dir)


def prepare_data(
    config: TrainConfig,
    data_root: Path | str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> PreparedData:
    """Load and check the dataset, build (or reuse) cached features, fit the scaler.

    Bad metadata or audio raises `DatasetError` here, before any training.
    Call it once in a driver process so that trials only read the cache.
    """
    root = resolve_data_root(config, data_root, cache_dir)
    dataset = load_desed(
        root,
        skip_missing_audio=config.skip_missing_audio,
        val_fraction=config.val_fraction,
        split_seed=config.split_seed,
    )
    store = FeatureStore(None if cache_dir is None else Path(cache_dir) / "features")
    feature_config = FeatureConfig()
    features = {
        name: store.features(split, feature_config, progress=progress)
        for name, split in dataset.splits.items()
    }
    scaler = fit_scaler([features[name] for name in TRAIN_PARTS if name in features])
    return PreparedData(root=root, dataset=dataset, labels=tuple(dataset.labels), features=features, scaler=scaler)


class ClipDataset(Dataset):
    """Features of one split with its frame and clip targets (zeros where unknown)."""

    def __init__(self, features: np.ndarray, strong: np.ndarray | None, weak: np.ndarray | None, n_classes: int):
        self.features = features
        n = len(features)
        self.strong = strong
        self.weak = weak
        self.n_classes = n_classes
        self.n_out = N_OUT_FRAMES if strong is None else strong.shape[1]
        self._zero_strong = np.zeros((self.n_out, n_classes), dtype=np.float32)
        self._zero_weak = np.zeros((n_classes,), dtype=np.float32)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.from_numpy(np.array(self.features[index], dtype=np.float32))
        strong = self._zero_strong if self.strong is None else self.strong[index]
        weak = self._zero_weak if self.weak is None else self.weak[index]
        return x, torch.from_numpy(np.asarray(strong)), torch.from_numpy(np.asarray(weak))


def _part_sizes(batch_size: int) -> tuple[int, int, int]:
    """(weak, unlabeled, strong) = (1/4, 1/2, 1/4) of the batch (paper 4.1)."""
    quarter = batch_size // 4
    return quarter, batch_size - 2 * quarter, quarter


# ----------------------------------------------------------------------------- trainer
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
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.device = self._pick_device(config.device)
        if self.device.type == "cpu" and config.reuse_host_memory:
            reuse_freed_memory()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.data = data or prepare_data(config, data_root, self.cache_dir, progress=progress)
        self.labels = self.data.labels
        n_classes = len(self.labels)

        self._seed_everything(config.seed)
        self.student = build_model(config, n_classes).to(self.device)
        self.teacher: CRNN | None = None
        if config.has_teacher:
            # Initialised independently, as in the reference; eq. 1 at step 0 copies the student.
            self.teacher = build_model(config, n_classes).to(self.device)
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=config.lr, betas=(0.9, 0.999))
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.grad_scaler = torch.amp.GradScaler(
            "cuda", enabled=config.amp and self.device.type == "cuda"
        )
        self.mean = torch.as_tensor(self.data.scaler.mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(self.data.scaler.std, dtype=torch.float32, device=self.device)
        feature_config = FeatureConfig()
        #: How the input was made from the linear mel (snr_noise goes back through it).
        self.input_space = LogMelSpace(self.mean, self.std, feature_config.top_db)

        self._build_loaders()
        self.rng = _random.Random(config.seed + 17)
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.best_state: dict[str, Tensor] | None = None
        self.trainable_parameters = count_parameters(self.student)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._writer = None

    # -- setup ---------------------------------------------------------------
    @staticmethod
    def _pick_device(name: str) -> torch.device:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but torch sees no CUDA device; use device=auto or cpu")
        return torch.device(name)

    @staticmethod
    def _seed_everything(seed: int) -> None:
        _random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)

    def _dataset(self, name: str, strong: bool, weak: bool) -> ClipDataset:
        split = self.data.split(name)
        return ClipDataset(
            self.data.features[name],
            split.strong_targets(self.labels, self.config.offset_rounding) if strong else None,
            split.weak_targets(self.labels) if weak else None,
            len(self.labels),
        )

    def _build_loaders(self) -> None:
        n_weak, n_unlabeled, n_strong = _part_sizes(self.config.batch_size)
        parts = [
            ("weak", self._dataset("weak", strong=False, weak=True), n_weak),
            ("unlabeled", self._dataset("unlabeled", strong=False, weak=False), n_unlabeled),
            ("synthetic_train", self._dataset("synthetic_train", strong=True, weak=True), n_strong),
        ]
        self.sampler_generators: list[torch.Generator] = []
        self.loaders: list[DataLoader] = []
        for i, (name, dataset, size) in enumerate(parts):
            if len(dataset) < size:
                raise ValueError(
                    f"the {name!r} part has {len(dataset)} clips but each batch takes {size} "
                    f"(batch_size={self.config.batch_size}); lower batch_size or add data"
                )
            generator = torch.Generator()
            generator.manual_seed(self.config.seed * 1000 + i)
            self.sampler_generators.append(generator)
            sampler = BatchSampler(RandomSampler(dataset, generator=generator), size, drop_last=True)
            self.loaders.append(
                DataLoader(
                    dataset,
                    batch_sampler=sampler,
                    num_workers=self.config.num_workers,
                    pin_memory=self.device.type == "cuda",
                )
            )
        steps = min(len(loader) for loader in self.loaders)
        if self.config.max_steps_per_epoch is not None:
            steps = min(steps, self.config.max_steps_per_epoch)
        self.steps_per_epoch = steps

    def normalise(self, features: Tensor) -> Tensor:
        return (features - self.mean) / self.std

    def _batches(self) -> Iterator[Batch]:
        for step, parts in enumerate(zip(*self.loaders)):
            if step >= self.steps_per_epoch:
                break
            (xw, sw, ww), (xu, su, wu), (xs, ss, ws) = parts
            features = torch.cat([xw, xu, xs])
            b = features.shape[0]
            weak_mask = torch.zeros(b, dtype=torch.bool)
            strong_mask = torch.zeros(b, dtype=torch.bool)
            weak_mask[: len(xw)] = True
            strong_mask[len(xw) + len(xu):] = True
            batch = Batch(
                features=features,
                strong_targets=torch.cat([sw, su, ss]),
                weak_targets=torch.cat([ww, wu, ws]),
                strong_mask=strong_mask,
                weak_mask=weak_mask,
            ).to(self.device, non_blocking=True)
            batch.features = self.normalise(batch.features)
            yield batch

    # -- training ------------------------------------------------------------
    @property
    def rampup_steps(self) -> float:
        return self.config.rampup_epochs * self.steps_per_epoch

    def writer(self):
        if self._writer is None and self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer

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
        for batch in self._batches():
            rampup = sigmoid_rampup(self.step, self.rampup_steps)
            lr = cfg.lr * rampup
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            weight = cfg.consistency_weight * rampup
            try:
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=cfg.amp):
                    terms = compute_losses(
                        self.student, self.teacher, batch, cfg, weight, self.rng, self.input_space
                    )
                values = terms.as_floats()
            except FloatingPointError as error:
                values = {"model_outputs": float("nan")}
                reason = str(error)
            else:
                reason = ""
            bad = [k for k, v in values.items() if not np.isfinite(v)]
            if bad:
                raise TrainingDiverged(
                    f"loss became non-finite at epoch {self.epoch + 1}, step {self.step} "
                    f"({', '.join(f'{k}={values[k]}' for k in bad)}{'; ' + reason if reason else ''}); "
                    f"config: augmentation="
                    f"{cfg.augmentation}, locations={cfg.locations}, epsilon={cfg.epsilon}, "
                    f"noise_scale={cfg.noise_scale}, noise_snr={cfg.noise_snr}, "
                    f"consistency_weight={cfg.consistency_weight}, "
                    f"lr={cfg.lr}. Lower the perturbation strength or the learning rate."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.grad_scaler.scale(terms.total).backward()
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
            if self.teacher is not None:
                # the (step + 1)-th update: alpha 0.5 first, as the reference (objectives.ema_alpha)
                update_ema(self.teacher, self.student, self.step + 1, cfg.ema_decay)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            self.step += 1
            n_steps += 1
            writer = self.writer()
            if writer is not None and self.step % 10 == 0:
                for k, v in values.items():
                    writer.add_scalar(f"train_step/{k}", v, self.step)
        if n_steps == 0:
            raise ValueError("an epoch had no training step: the smallest data part is smaller than its batch share")
        train_seconds = time.perf_counter() - start
        self.epoch += 1
        metrics: dict[str, Any] = {k: v / n_steps for k, v in sums.items()}
        metrics.update(
            epoch=self.epoch,
            step=self.step,
            steps=n_steps,
            lr=cfg.lr * rampup,
            rampup=rampup,
            consistency_weight=cfg.consistency_weight * rampup,
            train_seconds=train_seconds,
        )
        val_start = time.perf_counter()
        val = self.validate()
        metrics["val_seconds"] = time.perf_counter() - val_start
        metrics.update(val)
        improved = self.best_epoch is None or val["val_macro_f1"] > self.best_metrics.get("val_macro_f1", -1.0)
        if improved:
            self.best_epoch = self.epoch
            self.best_metrics = {k: v for k, v in val.items() if isinstance(v, (int, float)) or v is None}
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.selected_model().state_dict().items()}
        metrics["best_epoch"] = self.best_epoch
        metrics["best_val_macro_f1"] = self.best_metrics.get("val_macro_f1")
        metrics["epoch_seconds"] = time.perf_counter() - start
        self.history.append({k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None})
        self._log_epoch(metrics)
        return metrics

    def fit(
        self, epochs: int | None = None, callback: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Train until `epochs` (default config.epochs) epochs are done in total."""
        target = epochs if epochs is not None else self.config.epochs
        metrics: dict[str, Any] = {}
        while self.epoch < target:
            metrics = self.train_epoch()
            if self.progress:
                print(self.format_progress(metrics, target), file=sys.stderr, flush=True)
            if callback is not None:
                callback(metrics)
        return metrics

    @staticmethod
    def format_progress(m: dict[str, Any], target: int) -> str:
        psds = "" if m.get("val_psds") is None else f" val_psds {m['val_psds']:.3f}"
        return (
            f"epoch {m['epoch']:>3}/{target} loss {m['loss_total']:.4f} "
            f"(class {m['loss_class']:.4f} const {m['loss_const']:.4f} reg {m['loss_reg']:.4f}) "
            f"val_macro_f1 {m['val_macro_f1']:.3f}{psds} best@{m['best_epoch']} "
            f"{m['epoch_seconds']:.1f}s"
        )

    def _log_epoch(self, metrics: dict[str, Any]) -> None:
        writer = self.writer()
        if writer is None:
            return
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
                group = "val" if key.startswith("val_") else "train"
                writer.add_scalar(f"{group}/{key}", value, self.epoch)
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- inference and metrics ---------------------------------------------------
    def selected_model(self) -> CRNN:
        if self.config.select == "teacher":
            assert self.teacher is not None
            return self.teacher
        return self.student

    @torch.inference_mode()
    def predict(self, split_name: str, model: CRNN | None = None, batch_size: int = 32) -> np.ndarray:
        """Frame probabilities [N, 157, C] of a split, in eval mode."""
        model = model or self.selected_model()
        was_training = model.training
        model.eval()
        feats = self.data.features[split_name]
        out = []
        try:
            for i in range(0, len(feats), batch_size):
                x = torch.from_numpy(np.array(feats[i : i + batch_size], dtype=np.float32)).to(self.device)
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.config.amp):
                    strong, _ = model(self.normalise(x))
                out.append(strong.float().cpu().numpy())
        finally:
            model.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, N_OUT_FRAMES, len(self.labels)), np.float32)

    def _score(
        self, split_name: str, probs: np.ndarray, psds: bool, n_thresholds: int,
        variants: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        split = self.data.split(split_name)
        return evaluate_predictions(
            probs,
            split.filenames,
            self.labels,
            split.events_frame(),
            split.durations,
            threshold=self.config.threshold,
            median_window=self.config.median_window,
            compute_psds=psds,
            n_thresholds=n_thresholds,
            psds_variants=variants,
        )

    def validate(self) -> dict[str, Any]:
        """Event F1 (and PSDS if `val_psds`) of the selected model on the synthetic validation split.

        Inside the search only the (alpha_ct, alpha_st) = (0, 0) PSDS is computed,
        with `val_psds_thresholds` operating points (cheaper; 10 points read about
        0.03 lower than 50, so compare val_psds only between runs with the same
        setting). A NaN F1 (a split with no reference event) counts as 0.
        """
        probs = self.predict("synthetic_val")
        scores = self._score(
            "synthetic_val", probs, self.config.val_psds, self.config.val_psds_thresholds, ("psds",)
        )
        macro = float(scores["macro_f1"])
        return {
            "val_macro_f1": macro if math.isfinite(macro) else 0.0,
            "val_micro_f1": float(scores["micro_f1"]),
            "val_psds": None if scores.get("psds") is None else float(scores["psds"]),
        }

    def evaluate(self, split_name: str = "public_eval", use_best: bool = True, prefix: str | None = None) -> dict[str, Any]:
        """Full metrics (F1, per-class F1, PSDS variants at 50 thresholds) on a split.

        Uses the model selected on validation F1 (`use_best`), student or teacher
        per `config.select` (reported as `model`).
        """
        model = self.selected_model()
        if use_best and self.best_state is not None:
            model = copy.deepcopy(model)
            model.load_state_dict(self.best_state)
        probs = self.predict(split_name, model=model)
        scores = self._score(split_name, probs, True, 50)
        prefix = prefix or ("eval" if split_name == "public_eval" else split_name)
        out: dict[str, Any] = {
            f"{prefix}_macro_f1": float(scores["macro_f1"]),
            f"{prefix}_micro_f1": float(scores["micro_f1"]),
            f"{prefix}_psds": scores["psds"],
            f"{prefix}_psds_ct": scores["psds_ct"],
            f"{prefix}_psds_macro": scores["psds_macro"],
            f"{prefix}_per_class_f1": scores["per_class_f1"],
            f"{prefix}_merged_overlaps": scores.get("merged_overlaps", 0),
            "model": self.config.select,
            "model_epoch": self.best_epoch if use_best else self.epoch,
            "metric_versions": scores.get("metric_versions", metric_versions()),
        }
        return out

    # -- checkpoints -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
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
            "scaler": {"mean": self.mean.cpu(), "std": self.std.cpu()},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python_global": _json_safe(_random.getstate()),
                "python_trainer": _json_safe(self.rng.getstate()),
                "numpy": _json_safe(np.random.get_state()),
                "samplers": [g.get_state() for g in self.sampler_generators],
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        if list(state["labels"]) != list(self.labels):
            raise ValueError(
                f"checkpoint labels {state['labels']} differ from the dataset's {list(self.labels)}"
            )
        self.student.load_state_dict(state["student"])
        if self.teacher is not None:
            if state["teacher"] is None:
                raise ValueError("checkpoint has no teacher but regularization='mt' needs one")
            self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.grad_scaler.load_state_dict(state["grad_scaler"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.best_epoch = state["best_epoch"]
        self.best_metrics = dict(state["best_metrics"])
        self.best_state = state["best_state"]
        self.history = list(state["history"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        _random.setstate(_from_json_safe(rng["python_global"]))
        self.rng.setstate(_from_json_safe(rng["python_trainer"]))
        np_state = rng["numpy"]
        np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
        for generator, g_state in zip(self.sampler_generators, rng["samplers"]):
            generator.set_state(g_state)

    def save_checkpoint(self, directory: Path | str) -> Path:
        """Write the full state atomically to `directory/trainer_state.pt`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CHECKPOINT_FILE
        tmp = directory / f".{CHECKPOINT_FILE}.tmp-{os.getpid()}"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, directory: Path | str) -> None:
        path = Path(directory) / CHECKPOINT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no trainer checkpoint at {path}")
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.load_state_dict(state)

    def save_best_model(self, path: Path | str) -> Path:
        """The selected best weights with config and labels (weights_only loadable)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save(
            {
                "config": self.config.to_dict(),
                "labels": list(self.labels),
                "model": self.config.select,
                "epoch": self.best_epoch,
                "state_dict": self.best_state
                if self.best_state is not None
                else self.selected_model().state_dict(),
                "scaler": {"mean": self.mean.cpu(), "std": self.std.cpu()},
            },
            tmp,
        )
        os.replace(tmp, path)
        return path


def _json_safe(value: Any) -> Any:
    """RNG states as nested lists/ints/strs (loadable with weights_only=True)."""
    if isinstance(value, tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def _from_json_safe(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_json_safe(v) for v in value)
    return value
