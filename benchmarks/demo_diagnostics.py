"""Defect hunt for issue 13: is the CRNN's poor CPU score a bug or a recipe problem?

Measurements on the embedded data (`--size`), each printed as a small table:

1. **targets vs features**: the mean normalised log-mel energy (over the mel
   bands) of output frames at offsets -4..+4 around every event onset and
   offset (offset 0 = the first target frame, or the first frame after the
   event). A target/feature misalignment shows up as a step that is not at
   offset 0.
2. **ground truth through the decoder**: the frame targets fed as
   probabilities (0/1) to the same post-processing and metrics the trainer
   uses (threshold, median filter, sed_eval event F1, psds_eval PSDS): the
   ceiling of the pipeline itself, per split.
3. **linear frame classifier**: logistic regression per class on the
   normalised log-mel of each output frame (its 4 input frames pooled, +-2
   output frames of context), fitted with Adam on `synthetic_train`; frame F1
   and event F1 / PSDS on `synthetic_val` and `public_eval` at thresholds 0.5
   and 0.3 — what a CRNN should beat.
4. **activation scale at initialisation**: per conv block of the old demo's
   narrow CRNN (8-16-16-16-16-16-16, BiGRU 16) on 12 real training clips, the
   variance of the conv output, the std after BatchNorm and after the gated
   unit, for the reference init with bn_eps 1e-3 / 1e-5 and PyTorch's init.

Run: ``python benchmarks/demo_diagnostics.py [--size default] [--cache DIR]``
(1 thread; about a minute on `default`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sed.config import TrainConfig
from sed.eval.metrics import evaluate_predictions
from sed.training.trainer import prepare_data


def pooled_frames(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """[N, 628, 128] log-mel -> [N, 157, 128] normalised, mean of each 4 input frames."""
    x = (np.asarray(features, dtype=np.float32) - mean.astype(np.float32)) / std.astype(np.float32)
    n = x.shape[0]
    return x[:, : 157 * 4].reshape(n, 157, 4, x.shape[-1]).mean(axis=2)


def alignment_table(data, split_name: str) -> None:
    split = data.split(split_name)
    frames = pooled_frames(data.features[split_name], data.scaler.mean, data.scaler.std)
    energy = frames.mean(axis=-1)  # [N, 157]
    targets = split.strong_targets(data.labels)  # [N, 157, C]
    offsets = np.arange(-4, 5)
    rises, falls = [], []
    for i in range(len(split)):
        active = targets[i].max(axis=-1)  # any class active
        edges = np.diff(np.concatenate([[0.0], active, [0.0]]))
        for on in np.flatnonzero(edges == 1):
            if 4 <= on <= 157 - 5:
                rises.append(energy[i, on + offsets])
        for off in np.flatnonzero(edges == -1):
            if 4 <= off <= 157 - 5:
                falls.append(energy[i, off + offsets])
    rise, fall = np.mean(rises, axis=0), np.mean(falls, axis=0)
    print(f"\n[1] {split_name}: mean normalised energy around onsets ({len(rises)}) and offsets ({len(falls)})")
    print("frame offset : " + " ".join(f"{o:>6d}" for o in offsets))
    print("onset  energy: " + " ".join(f"{v:6.2f}" for v in rise))
    print("offset energy: " + " ".join(f"{v:6.2f}" for v in fall))
    print(
        f"largest rise between offsets {offsets[np.argmax(np.diff(rise))]} and "
        f"{offsets[np.argmax(np.diff(rise))] + 1}; largest fall between "
        f"{offsets[np.argmin(np.diff(fall))]} and {offsets[np.argmin(np.diff(fall))] + 1}"
    )


def score(data, split_name: str, probs: np.ndarray, threshold: float, median: int) -> dict:
    split = data.split(split_name)
    return evaluate_predictions(
        probs,
        split.filenames,
        data.labels,
        split.events_frame(),
        split.durations,
        threshold=threshold,
        median_window=median,
        compute_psds=True,
        n_thresholds=50,
        psds_variants=("psds",),
    )


def ground_truth_table(data) -> None:
    print("\n[2] frame targets as predictions (0/1) through decode + sed_eval + psds_eval")
    print("| split | median window | event macro F1 | PSDS |")
    print("|---|---|---|---|")
    for split_name in ("synthetic_val", "validation", "public_eval"):
        targets = data.split(split_name).strong_targets(data.labels).astype(np.float32)
        for median in (1, 7):
            s = score(data, split_name, targets, 0.5, median)
            print(f"| {split_name} | {median} | {s['macro_f1']:.3f} | {s['psds']:.3f} |")


def context_stack(frames: np.ndarray, context: int = 2) -> np.ndarray:
    padded = np.pad(frames, ((0, 0), (context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[:, k : k + frames.shape[1]] for k in range(2 * context + 1)], axis=-1)


def frame_f1(probs: np.ndarray, targets: np.ndarray, threshold: float) -> float:
    pred = probs >= threshold
    tp = (pred & (targets > 0.5)).sum(axis=(0, 1))
    fp = (pred & (targets < 0.5)).sum(axis=(0, 1))
    fn = (~pred & (targets > 0.5)).sum(axis=(0, 1))
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return float(f1.mean())


def linear_table(data, epochs: int = 300) -> None:
    mean, std = data.scaler.mean, data.scaler.std
    x_train = context_stack(pooled_frames(data.features["synthetic_train"], mean, std))
    y_train = data.split("synthetic_train").strong_targets(data.labels)
    xt = torch.from_numpy(x_train.reshape(-1, x_train.shape[-1]))
    yt = torch.from_numpy(y_train.reshape(-1, y_train.shape[-1]))
    model = torch.nn.Linear(xt.shape[1], yt.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = time.perf_counter()
    for _ in range(epochs):  # full batch
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xt), yt)
        loss.backward()
        opt.step()
    print(
        f"\n[3] linear frame classifier ({xt.shape[1]} inputs, {epochs} full-batch Adam steps, "
        f"{time.perf_counter() - start:.1f} s, final train BCE {loss.item():.3f})"
    )
    print("| split | threshold | median | frame macro F1 | event macro F1 | PSDS |")
    print("|---|---|---|---|---|---|")
    for split_name in ("synthetic_val", "public_eval"):
        x = context_stack(pooled_frames(data.features[split_name], mean, std))
        with torch.no_grad():
            probs = torch.sigmoid(model(torch.from_numpy(x))).numpy()
        targets = data.split(split_name).strong_targets(data.labels)
        for threshold, median in ((0.5, 7), (0.3, 7), (0.5, 15)):
            s = score(data, split_name, probs, threshold, median)
            print(
                f"| {split_name} | {threshold} | {median} | {frame_f1(probs, targets, threshold):.3f} | "
                f"{s['macro_f1']:.3f} | {s['psds']:.3f} |"
            )


def init_scale_table(data) -> None:
    import dataclasses

    from sed.nn.model import build_model

    x = torch.from_numpy(np.array(data.features["synthetic_train"][:12], dtype=np.float32))
    x = (x - torch.as_tensor(data.scaler.mean, dtype=torch.float32)) / torch.as_tensor(
        data.scaler.std, dtype=torch.float32
    )
    print("\n[4] activation scale at initialisation (train-mode BN), old demo CRNN")
    print("| init | bn_eps | block | conv-output variance | BN-output std | gated-unit output std |")
    print("|---|---|---|---|---|---|")
    for init, eps in (("reference", 1e-3), ("reference", 1e-5), ("torch", 1e-3)):
        cfg = dataclasses.replace(
            TrainConfig(),
            cnn_filters=(8, 16, 16, 16, 16, 16, 16),
            rnn_hidden=16,
            dropout=0.0,
            bn_eps=eps,
            weight_init=init,
        )
        torch.manual_seed(0)
        model = build_model(cfg, len(data.labels)).train()
        h = x.unsqueeze(1)
        with torch.no_grad():
            for i, block in enumerate(model.cnn.blocks):
                conv = block.conv(h)
                bn = block.bn(conv)
                gate = block.gate(bn)
                h = block.pool(gate)
                if i in (0, 1, 3, 6):
                    print(
                        f"| {init} | {eps:g} | {i + 1} | {float(conv.var(dim=(0, 2, 3)).mean()):.1e} | "
                        f"{float(bn.std()):.3f} | {float(gate.std()):.4f} |"
                    )
            strong, _ = model(x)
        print(
            f"| {init} | {eps:g} | output | frame probabilities: mean {float(strong.mean()):.3f}, "
            f"std {float(strong.std()):.1e} | | |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="default", choices=["tiny", "small", "default"])
    parser.add_argument("--cache", default=None, help="cache dir (default $SEDTUNE_CACHE)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = prepare_data(TrainConfig(embedded_size=args.size), cache_dir=args.cache, progress=False)
    alignment_table(data, "synthetic_train")
    ground_truth_table(data)
    linear_table(data)
    init_scale_table(data)


if __name__ == "__main__":
    main()
