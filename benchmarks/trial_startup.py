"""A trial's data start-up (issue 13, item 5): preparing the data itself vs reading what the driver prepared.

Before, every trial called `prepare_data` again: `soundfile.info` and a stat
of every audio file, a full `fit_scaler` pass over the training features.
Now the search driver writes `OUT/NAME/prepared/<key>.json`
(`search.prepared`) and a trial calls `load_prepared`: it reads the splits,
the feature keys and the stored scaler, and memory-maps the cached features.

Measured here, each timing the median of `--reps` calls in this process:

1. `default` embedded data (1,200 clips): `prepare_data` with a warm cache
   (the old trial start-up) vs `load_prepared`.
2. A DESED-size set (`--clips`, default 20,434 = DESED 2020: 2,584
   synthetic strong + 1,578 weak + 14,412 unlabeled + 1,168 validation +
   692 public eval): splits with DESED's part sizes and feature files of
   the full shape [N, 628, 128] float32 (sparse files: nothing is read
   from them at start-up), saved with `save_prepared` and read with
   `load_prepared`. The old path's cost at that size is estimated from
   the per-file `soundfile.info` + stat cost and the `fit_scaler`
   throughput measured on the default data (it would read ~6 GB).

Run: python benchmarks/trial_startup.py [--reps 5] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: DESED 2020 part sizes (DCASE 2020 task 4 baseline metadata; docs/reference.md).
DESED_PARTS = {
    "synthetic_train": 2067,
    "synthetic_val": 517,
    "weak": 1578,
    "unlabeled": 14412,
    "validation": 1168,
    "public_eval": 692,
}


def median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def default_data(reps: int, cache: str | None) -> dict[str, float]:
    import soundfile as sf

    from sed.config import TrainConfig, apply_overrides
    from sed.data.prepare import TRAIN_PARTS, load_prepared, prepare_data, save_prepared
    from sed.features.scaler import fit_scaler

    cfg = apply_overrides(TrainConfig(), {"embedded_size": "default"})
    data = prepare_data(cfg, cache_dir=cache, progress=False)  # warm the cache
    with tempfile.TemporaryDirectory() as tmp:
        path = save_prepared(data, Path(tmp) / "prepared.json")
        old = median_time(lambda: prepare_data(cfg, cache_dir=cache, progress=False), reps)
        new = median_time(lambda: load_prepared(path), reps)
    files = [p for split in data.dataset.splits.values() for p in split.audio_paths]
    info = median_time(lambda: [sf.info(str(p)) for p in files], max(1, reps // 2)) / len(files)
    train = [np.asarray(data.features[n]) for n in TRAIN_PARTS]
    gigabytes = sum(a.nbytes for a in train) / 1e9
    fit = median_time(lambda: fit_scaler(train), max(1, reps // 2))
    return {"clips": len(files), "old": old, "new": new, "info_per_file": info, "fit_s_per_gb": fit / gigabytes}


def desed_size(reps: int, clips: int) -> dict[str, float]:
    from sed.data.desed import DesedDataset, Event, Split
    from sed.data.prepare import PreparedData, load_prepared, save_prepared
    from sed.features.logmel import FEATURE_CODE_VERSION, FeatureConfig
    from sed.features.scaler import Scaler
    from sed.features.store import FeatureStore

    scale = clips / sum(DESED_PARTS.values())
    sizes = {name: max(1, round(n * scale)) for name, n in DESED_PARTS.items()}
    config = FeatureConfig()
    labels = (
        "Alarm_bell_ringing",
        "Blender",
        "Cat",
        "Dishes",
        "Dog",
        "Electric_shaver_toothbrush",
        "Frying",
        "Running_water",
        "Speech",
        "Vacuum_cleaner",
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = FeatureStore(root / "features")
        store.root.mkdir(parents=True)
        splits, features, keys = {}, {}, {}
        for name, n in sizes.items():
            names = [f"{name}_{i:06d}.wav" for i in range(n)]
            strong = name not in ("weak", "unlabeled")
            split = Split(
                name=name,
                filenames=names,
                audio_paths=[root / "audio" / f for f in names],
                events=[[Event(1.0, 2.5, labels[i % 10]), Event(4.0, 9.0, labels[(i + 3) % 10])] for i in range(n)]
                if strong
                else None,
                weak_labels=None
                if name == "unlabeled"
                else [sorted({labels[i % 10], labels[(i + 3) % 10]}) if strong else [labels[i % 10]] for i in range(n)],
                durations=[10.0] * n,
            )
            key = f"bench-{name}-{n}"
            array = np.lib.format.open_memmap(
                store.path(key), mode="w+", dtype=np.float32, shape=(n, config.n_frames, config.n_mels)
            )  # sparse file
            del array
            store._sidecar(key).write_text(
                json.dumps(
                    {
                        "key": key,
                        "split": name,
                        "code_version": FEATURE_CODE_VERSION,
                        "shape": [n, config.n_frames, config.n_mels],
                        "dtype": "float32",
                        "filenames": names,
                    }
                )
            )
            splits[name], keys[name] = split, key
            features[name] = store.open(key, split, config)
        dataset = DesedDataset(root=root, labels=labels, splits=splits, missing_audio={})
        scaler = Scaler(mean=np.zeros(config.n_mels), std=np.ones(config.n_mels))
        data = PreparedData(
            root=root,
            dataset=dataset,
            labels=labels,
            features=features,
            scaler=scaler,
            feature_config=config,
            feature_keys=keys,
            feature_root=store.root,
        )
        path = save_prepared(data, root / "prepared.json")
        new = median_time(lambda: load_prepared(path), reps)
        size_mb = path.stat().st_size / 1e6
        train_gb = (
            sum(sizes[n] for n in ("synthetic_train", "weak", "unlabeled")) * config.n_frames * config.n_mels * 4 / 1e9
        )
    return {"clips": sum(sizes.values()), "new": new, "json_mb": size_mb, "train_gb": train_gb}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--clips", type=int, default=sum(DESED_PARTS.values()))
    parser.add_argument("--cache", default=None)
    args = parser.parse_args(argv)
    import os

    small = default_data(args.reps, args.cache)
    print(
        f"default embedded data, {small['clips']} clips: prepare_data (old trial start-up, warm cache) "
        f"{small['old']:.3f} s; load_prepared {small['new']:.3f} s ({small['old'] / small['new']:.1f}x less)"
    )
    print(
        f"  soundfile.info + stat per file {1e3 * small['info_per_file']:.3f} ms; fit_scaler "
        f"{small['fit_s_per_gb']:.2f} s per GB of training features"
    )
    big = desed_size(args.reps, args.clips)
    old_estimate = big["clips"] * small["info_per_file"] + big["train_gb"] * small["fit_s_per_gb"]
    print(
        f"DESED size, {big['clips']} clips: load_prepared {big['new']:.3f} s (prepared file "
        f"{big['json_mb']:.1f} MB); the old start-up, estimated: {big['clips']} x info "
        f"+ fit_scaler over {big['train_gb']:.1f} GB = {old_estimate:.0f} s (warm page cache; more from disk)"
    )
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
