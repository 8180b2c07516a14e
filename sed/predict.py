"""Detect sound events in new audio: `python -m sed.predict --model best_model.pt AUDIO... --out OUT`.

One job: load a `best_model.pt` (sed.training.checkpoint.save_best_model: weights,
config, labels, scaler, feature settings), compute frame probabilities for
audio files of any sample rate, channel count and length, and write the same
DCASE-format files as a training run (sed.eval.outputs: `detections.tsv` at the
model's threshold after its median filter, `scores/raw/`, `scores/filtered/`,
`durations.tsv`).

Audio is read as sed.data.audio does for training (soundfile, channels mixed
down by their mean, resampled to the model's rate) but kept at its own
length. The CRNN sees 10 s windows (its training input). Clips of other
lengths are cut into windows on the model's output frame grid:

* window ``k`` starts at sample ``k * 156 * 1020`` (156 output frames of
  63.75 ms = 9.945 s), is 10 s long, zero-padded past the end of the audio;
* frames ``0 .. 155`` of window ``k`` become frames ``156 k .. 156 k + 155``
  of the clip (the 157th frame of a window, 9.945-10.009 s, overlaps the next
  window's first and is taken from the next window), and the last window
  gives all frames that start before the clip's end.

So a 10 s clip is one window, scored exactly as in training and evaluation,
a shorter clip is one zero-padded window (as in training), and a longer one
is stitched from non-overlapping windows without resampling the frame grid:
frame ``i`` always spans ``[i * 63.75 ms, (i + 1) * 63.75 ms)``. The model
sees no context across a window boundary (every 9.945 s), as it sees none
past the 10 s of a training clip.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sed.errors import UserError

__all__ = ["AUDIO_SUFFIXES", "LoadedModel", "load_model", "predict_file", "predict_paths", "main"]

#: File endings taken from a folder (what libsndfile reads).
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class PredictError(UserError):
    """Unusable model file or input; the message names it and the fix."""


class LoadedModel:
    """A best_model.pt ready to score waveforms: CRNN, scaler, log-mel, labels and settings."""

    def __init__(self, state: dict[str, Any], path: Path) -> None:
        from sed.config import ConfigError, TrainConfig, apply_overrides
        from sed.constants import POOL_TIME
        from sed.features.logmel import FeatureConfig, LogMel
        from sed.features.scaler import Scaler
        from sed.nn.model import build_model
        from sed.training.checkpoint import MODEL_FORMAT

        if state.get("format") != MODEL_FORMAT:
            raise PredictError(
                f"{path}: model format {state.get('format')!r} is not {MODEL_FORMAT!r}. Fix: use a best_model.pt "
                "written by this version of sed.train or the final stage of search.run."
            )
        try:
            self.config: TrainConfig = apply_overrides(TrainConfig(), state["config"])
        except (ConfigError, ValueError) as error:
            raise PredictError(f"{path}: its config does not load here ({error}).") from None
        self.labels: list[str] = [str(label) for label in state["labels"]]
        try:
            self.features = FeatureConfig.from_dict(dict(state["features"]))
            self.scaler = Scaler.from_dict({k: np.asarray(v) for k, v in state["scaler"].items()})
        except (KeyError, ValueError) as error:
            raise PredictError(f"{path}: its features or scaler do not load ({error}).") from None
        self.frame_step = float(state["frame_step"])
        self.model = build_model(self.config, len(self.labels))
        self.model.load_state_dict(state["state_dict"])
        self.model.eval()
        self.logmel = LogMel(self.features)
        #: samples per output frame (1020 at 16 kHz) and output frames per 10 s window (157)
        self.frame_samples = int(round(self.frame_step * self.features.sample_rate))
        self.window_frames = self.features.n_frames // POOL_TIME

    @torch.inference_mode()
    def window_probs(self, windows: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """Frame probabilities [W, 157, C] of 10 s waveforms [W, samples]."""
        out = []
        for i in range(0, len(windows), batch_size):
            wave = torch.from_numpy(np.ascontiguousarray(windows[i : i + batch_size], dtype=np.float32))
            strong, _ = self.model(self.scaler.transform(self.logmel(wave)))
            out.append(strong.float().numpy())
        return np.concatenate(out)


def load_model(path: Path | str) -> LoadedModel:
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: model file not found. Fix: give the best_model.pt of a run (--model).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: torch raises several types
        raise PredictError(f"{path}: cannot load it as a best_model.pt ({type(error).__name__}: {error}).") from None
    if not isinstance(state, dict):
        raise PredictError(f"{path}: not a best_model.pt (it holds a {type(state).__name__}).")
    return LoadedModel(state, path)


def predict_file(model: LoadedModel, path: Path | str) -> tuple[np.ndarray, float]:
    """(frame probabilities [T, C] for the frames starting before the clip end, duration in s)."""
    from sed.data.audio import read_audio

    rate = model.features.sample_rate
    wave = read_audio(path, sample_rate=rate, clip_seconds=None)
    duration = len(wave) / rate
    n_frames = max(1, int(math.ceil(duration / model.frame_step - 1e-9)))
    hop_frames = model.window_frames - 1
    hop = hop_frames * model.frame_samples
    size = model.features.clip_samples
    # the fewest windows whose frames reach the clip end: the last gives up to all its frames
    n_windows = 1 + max(0, int(math.ceil((n_frames - model.window_frames) / hop_frames)))
    windows = np.zeros((n_windows, size), dtype=np.float32)
    for k in range(n_windows):
        piece = wave[k * hop : k * hop + size]
        windows[k, : len(piece)] = piece
    per_window = model.window_probs(windows)
    probs = np.zeros((n_frames, len(model.labels)), dtype=np.float32)
    for k in range(n_windows):
        first = k * hop_frames
        take = min(model.window_frames if k == n_windows - 1 else hop_frames, n_frames - first)
        if take > 0:
            probs[first : first + take] = per_window[k, :take]
    return probs, duration


def _audio_files(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise PredictError(
                    f"{item}: no audio file ({', '.join(AUDIO_SUFFIXES)}) directly in this folder. "
                    "Fix: give audio files or a folder that holds them (subfolders are not searched)."
                )
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise PredictError(f"{item}: no such file or folder. Fix: give audio files or folders of them.")
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PredictError(
            f"two inputs are both named {duplicates[0]!r}; outputs are keyed by file name. Fix: rename one."
        )
    return files


def predict_paths(
    model: LoadedModel,
    inputs: list[Path],
    out: Path,
    threshold: float | None = None,
    median_window: int | None = None,
) -> Path:
    """Score every audio file of ``inputs`` and write the DCASE-format files into ``out``."""
    from sed.eval.outputs import write_set_outputs

    files = _audio_files(inputs)
    results = [predict_file(model, f) for f in files]
    longest = max(len(p) for p, _ in results)
    probs = np.zeros((len(files), longest, len(model.labels)), dtype=np.float32)
    for i, (clip, _) in enumerate(results):
        probs[i, : len(clip)] = clip  # zero scores past a clip's end are never active (threshold > 0)
    return write_set_outputs(
        out,
        probs,
        [f.name for f in files],
        model.labels,
        [d for _, d in results],
        model.config.threshold if threshold is None else threshold,
        model.config.median_window if median_window is None else median_window,
        frame_step=model.frame_step,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sed.predict",
        description="Detect sound events in audio files with a trained best_model.pt.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="audio files, or folders of audio files")
    parser.add_argument("--model", type=Path, required=True, help="best_model.pt of sed.train or the final stage")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the model's)")
    parser.add_argument("--median-window", type=int, default=None, help="median filter frames (default: the model's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    try:
        model = load_model(args.model)
        if args.threshold is not None and not 0.0 < args.threshold < 1.0:
            raise PredictError(f"--threshold {args.threshold} must be in (0, 1).")
        if args.median_window is not None and args.median_window < 1:
            raise PredictError(f"--median-window {args.median_window} must be >= 1 (1 = no filter).")
        out = predict_paths(model, list(args.inputs), args.out, args.threshold, args.median_window)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
