"""How strong is the baseline's input noise, and how exact is `snr_noise` on cached features?

On clips of the embedded dataset (real audio works the same with --data):

1. the reference's noise (`snr_noise`: 30 dB SNR per mel band on the linear
   mel, then dB and the scaler) vs the old stand-in (`random`, isotropic, relative
   norm 10^(-30/20) = 0.0316 on the normalised input): relative norm of the
   change of the network's input ||x' - x|| / ||x||, and the change in dB
   (median, 99th percentile, max);
2. `snr_noise` computed from the cached, top_db-floored dB features (what the
   trainer does) vs the recipe on the exact linear mel from the audio (what
   the reference does), with the same noise sample: the share of bins that
   differ by more than 0.01 dB, and the largest difference;
3. the same input change for FilterAugment's random band gains (`filter`).

    python benchmarks/input_noise.py [--size small] [--clips 32] [--snr 30]

Results are written in benchmarks/README.md ("Input noise").
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from sed.augment.band_filter import BandLayout, filter_input, random_gains
from sed.augment.perturb import LogMelSpace, random_noise, snr_noise
from sed.config import SNR_30DB_SCALE, TrainConfig
from sed.data.audio import read_audio
from sed.features.logmel import AMIN, FeatureConfig, LogMel
from sed.training.trainer import prepare_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small", "default"])
    parser.add_argument("--data", default=None, help="a DESED root instead of the embedded data")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--snr", type=float, default=30.0)
    args = parser.parse_args()

    cfg = TrainConfig(embedded_size=args.size, data=args.data)
    data = prepare_data(cfg, progress=False)
    split = data.split("synthetic_train")
    n = min(args.clips, len(split))
    feature_config = FeatureConfig()
    space = LogMelSpace(data.scaler, feature_config.top_db)
    std = torch.as_tensor(data.scaler.std, dtype=torch.float32)
    cached_db = torch.from_numpy(np.array(data.features["synthetic_train"][:n], dtype=np.float32))
    x = data.scaler.transform(cached_db)

    torch.manual_seed(0)
    z = torch.randn_like(x)
    ours = snr_noise(x, space, args.snr, noise=z)
    stand_in = x + random_noise(x, SNR_30DB_SCALE)
    rel = lambda a: ((a - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).numpy()  # noqa: E731
    db_move = ((ours - x) * std).abs().flatten().numpy()
    db_move_stand_in = ((stand_in - x) * std).abs().flatten().numpy()
    print(f"{n} clips of {args.data or 'embedded ' + args.size} synthetic_train, SNR {args.snr:g} dB")
    print(
        f"relative norm of the input change: snr_noise {np.median(rel(ours)):.3f} (median; "
        f"{rel(ours).min():.3f}-{rel(ours).max():.3f}), random at 0.0316: {np.median(rel(stand_in)):.4f}"
    )
    for name, move in (("snr_noise", db_move), ("random 0.0316", db_move_stand_in)):
        print(
            f"  |change| in dB, {name}: median {np.median(move):.2f}, "
            f"p99 {np.percentile(move, 99):.1f}, max {move.max():.1f}"
        )

    # FilterAugment's band gains (`filter`, issue #16) at the default and the searched extremes
    for bands, db, mode in ((3, 6.0, "linear"), (3, 6.0, "step"), (6, 12.0, "linear"), (2, 1.0, "linear")):
        layout = BandLayout.draw(n, x.shape[-1], bands, 6, mode)
        filtered = filter_input(
            x, data.scaler, random_gains(n, layout.n_gains, db), layout.weights, feature_config.top_db
        )
        move = ((filtered - x) * std).abs().flatten().numpy()
        print(
            f"filter {bands} bands, {db:g} dB, {mode}: relative norm {np.median(rel(filtered)):.3f} (median), "
            f"|change| in dB median {np.median(move):.2f}, p99 {np.percentile(move, 99):.1f}, max {move.max():.1f}"
        )

    # exact recipe from the audio's linear mel, same z
    log_mel = LogMel(feature_config)
    worst, share = 0.0, []
    for i in range(n):
        wave = read_audio(split.audio_paths[i])
        amplitude = log_mel.mel(torch.as_tensor(wave, dtype=torch.float32)[None])[0].T  # [T, F]
        amplitude = amplitude[: feature_config.n_frames]
        sigma = torch.sqrt(amplitude.pow(2).mean(dim=0, keepdim=True) * 10 ** (-args.snr / 10))
        noisy = 20 * torch.log10(torch.clamp((amplitude + sigma * z[i, : amplitude.shape[0]]).abs(), min=AMIN))
        noisy = torch.maximum(noisy, noisy.max() - feature_config.top_db)
        ours_db = data.scaler.inverse_transform(ours[i, : amplitude.shape[0]])
        diff = (ours_db - noisy).abs()
        worst = max(worst, float(diff.max()))
        share.append(float((diff > 0.01).float().mean()))
    floored = float(
        (cached_db <= cached_db.amax(dim=(1, 2), keepdim=True) - feature_config.top_db + 1e-4).float().mean()
    )
    print(f"bins at the cached top_db floor: {100 * floored:.2f} %")
    print(
        f"snr_noise from cached dB vs the exact recipe: {100 * np.mean(share):.3f} % of bins differ "
        f"by > 0.01 dB, largest difference {worst:.2f} dB (bound 20 log10 2 = {20 * math.log10(2):.2f})"
    )


if __name__ == "__main__":
    main()
