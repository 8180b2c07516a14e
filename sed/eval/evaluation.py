"""Scoring a model on a split: frame probabilities, validation metrics, full evaluation.

One job: run a CRNN in eval mode over a prepared split (`Evaluator.predict`),
and turn its frame probabilities into the run's numbers through
`sed.eval.metrics.evaluate_predictions` (post-processing + sed_eval + psds_eval).
`validate` is the cheap per-epoch number of the search (event F1; PSDS at a
few thresholds only with `val_psds`; the threshold-free PSDS1 with
`val_psds1`; the frame-level average precision with `val_frame_ap`); `evaluate` the full set the final stage reports (F1, per-class
F1, the three PSDS variants at 50 thresholds, and the threshold-free PSDS1,
PSDS2 and intersection F1 of sed_scores_eval).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sed.config import TrainConfig
from sed.constants import N_OUT_FRAMES
from sed.data.prepare import PreparedData
from sed.eval.frame_scores import frame_average_precision
from sed.eval.metrics import evaluate_predictions, metric_versions
from sed.eval.outputs import write_set_outputs
from sed.nn.model import CRNN

__all__ = ["Evaluator"]


class Evaluator:
    """Predictions and metrics of one run's models on its prepared splits."""

    def __init__(self, data: PreparedData, config: TrainConfig, device: torch.device, amp_dtype: torch.dtype) -> None:
        self.data = data
        self.config = config
        self.device = device
        self.amp_dtype = amp_dtype
        self._targets: dict[str, np.ndarray] = {}

    @torch.inference_mode()
    def predict(self, model: CRNN, split_name: str, batch_size: int = 32) -> np.ndarray:
        """Frame probabilities [N, 157, C] of a split, in eval mode (the model's mode is restored)."""
        was_training = model.training
        model.eval()
        feats = self.data.features[split_name]
        out = []
        try:
            for i in range(0, len(feats), batch_size):
                x = torch.from_numpy(np.array(feats[i : i + batch_size], dtype=np.float32)).to(self.device)
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.config.amp):
                    strong, _ = model(self.data.scaler.transform(x))
                out.append(strong.float().cpu().numpy())
        finally:
            model.train(was_training)
        if out:
            return np.concatenate(out)
        return np.zeros((0, N_OUT_FRAMES, len(self.data.labels)), np.float32)

    def score(
        self,
        split_name: str,
        probs: np.ndarray,
        psds: bool,
        n_thresholds: int,
        variants: tuple[str, ...] | None = None,
        threshold_free: bool | tuple[str, ...] = False,
    ) -> dict[str, Any]:
        split = self.data.split(split_name)
        return evaluate_predictions(
            probs,
            split.filenames,
            self.data.labels,
            split.events_frame(),
            split.durations,
            threshold=self.config.threshold,
            median_window=self.config.median_window,
            compute_psds=psds,
            n_thresholds=n_thresholds,
            psds_variants=variants,
            threshold_free=threshold_free,
        )

    def validate(self, model: CRNN) -> dict[str, Any]:
        """Event F1 (and PSDS if `val_psds`, PSDS1 if `val_psds1`, frame AP if `val_frame_ap`) on the
        selection split (`config.selection_split`).

        Inside the search only the (alpha_ct, alpha_st) = (0, 0) PSDS is computed,
        with `val_psds_thresholds` operating points (cheaper; 10 points read about
        0.03 lower than 50, so compare val_psds only between runs with the same
        setting). A NaN F1 (a split with no reference event) counts as 0.
        """
        split = self.config.selection_split
        probs = self.predict(model, split)
        scores = self.score(
            split,
            probs,
            self.config.compute_val_psds,
            self.config.val_psds_thresholds,
            ("psds",),
            threshold_free=("psds1",) if self.config.compute_val_psds1 else False,
        )
        macro = float(scores["macro_f1"])
        return {
            "val_macro_f1": macro if math.isfinite(macro) else 0.0,
            "val_micro_f1": float(scores["micro_f1"]),
            "val_psds": None if scores.get("psds") is None else float(scores["psds"]),
            "val_psds1": None if scores.get("psds1") is None else float(scores["psds1"]),
            "val_frame_ap": (
                frame_average_precision(probs, self._frame_targets(split)) if self.config.compute_val_frame_ap else None
            ),
        }

    def _frame_targets(self, split_name: str) -> np.ndarray:
        """The split's frame targets on the model's frame grid (encoded once per split)."""
        if split_name not in self._targets:
            split = self.data.split(split_name)
            self._targets[split_name] = split.strong_targets(self.data.labels, self.config.offset_rounding)
        return self._targets[split_name]

    def write_outputs(self, split_name: str, probs: np.ndarray, out_dir: Path) -> Path:
        """The DCASE-format files of a split's probabilities (sed.eval.outputs.write_set_outputs)."""
        split = self.data.split(split_name)
        return write_set_outputs(
            out_dir,
            probs,
            split.filenames,
            self.data.labels,
            split.durations,
            self.config.threshold,
            self.config.median_window,
            split.events_frame() if split.is_strong else None,
        )

    def evaluate(
        self,
        model: CRNN,
        split_name: str,
        prefix: str | None,
        model_epoch: int | None,
        out_dir: Path | None = None,
    ) -> dict[str, Any]:
        """Full metrics (F1, per-class F1, PSDS variants at 50 thresholds, threshold-free PSDS1 /
        PSDS2 / intersection F1) of `model` on a split; with `out_dir` also its DCASE-format files."""
        probs = self.predict(model, split_name)
        if out_dir is not None:
            self.write_outputs(split_name, probs, out_dir)
        scores = self.score(split_name, probs, True, 50, threshold_free=True)
        prefix = prefix or ("eval" if split_name == "public_eval" else split_name)
        return {
            f"{prefix}_macro_f1": float(scores["macro_f1"]),
            f"{prefix}_micro_f1": float(scores["micro_f1"]),
            f"{prefix}_psds": scores["psds"],
            f"{prefix}_psds_ct": scores["psds_ct"],
            f"{prefix}_psds_macro": scores["psds_macro"],
            f"{prefix}_psds1": scores["psds1"],
            f"{prefix}_psds2": scores["psds2"],
            f"{prefix}_intersection_f1": scores["intersection_f1"],
            f"{prefix}_per_class_f1": scores["per_class_f1"],
            f"{prefix}_merged_overlaps": scores.get("merged_overlaps", 0),
            "model": self.config.select,
            "model_epoch": model_epoch,
            "metric_versions": scores.get("metric_versions", metric_versions()),
        }
