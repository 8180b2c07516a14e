"""Everything a training run reads, prepared once: dataset, cached features, targets' source, scaler.

One job: `prepare_data(config)` resolves the dataset root (the embedded data
unless `data` is given), loads and checks the DESED metadata and audio
(`DatasetError` here, before any training), builds or reuses the cached
log-mel features of every split (`sed.feature_store.FeatureStore`) and fits
the per-band scaler on the training parts. A search driver calls it once so
that its trials only read the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sed.config import TrainConfig
from sed.data.desed import DesedDataset, Split, load_desed
from sed.data.synth import ensure_embedded
from sed.feature_store import FeatureStore
from sed.features import FeatureConfig
from sed.scaler import Scaler, fit_scaler

__all__ = ["TRAIN_PARTS", "PreparedData", "prepare_data", "resolve_data_root"]

#: The parts the scaler is fitted on (the reference: weak + unlabeled + synthetic training data).
TRAIN_PARTS: tuple[str, ...] = ("weak", "unlabeled", "synthetic_train")


@dataclass
class PreparedData:
    """Everything a trial reads: the dataset, memory-mapped features, the scaler."""

    root: Path
    dataset: DesedDataset
    labels: tuple[str, ...]
    features: dict[str, np.ndarray]
    scaler: Scaler
    feature_config: FeatureConfig

    def split(self, name: str) -> Split:
        return self.dataset.splits[name]


def resolve_data_root(config: TrainConfig, data_root: Path | str | None, cache_dir: Path | None) -> Path:
    """`data_root`, else `config.data`, else the embedded dataset (built once per cache)."""
    if data_root is not None:
        return Path(data_root).expanduser().resolve()
    if config.data:
        return Path(config.data).expanduser().resolve()
    return ensure_embedded(config.embedded_size, seed=config.embedded_seed, cache_dir=cache_dir)


def prepare_data(
    config: TrainConfig,
    data_root: Path | str | None = None,
    cache_dir: Path | str | None = None,
    progress: bool = True,
) -> PreparedData:
    """Load and check the dataset, build (or reuse) cached features, fit the scaler."""
    cache = None if cache_dir is None else Path(cache_dir)
    root = resolve_data_root(config, data_root, cache)
    dataset = load_desed(
        root,
        skip_missing_audio=config.skip_missing_audio,
        val_fraction=config.val_fraction,
        split_seed=config.split_seed,
    )
    store = FeatureStore(None if cache is None else cache / "features")
    feature_config = FeatureConfig()
    features = {
        name: store.features(split, feature_config, progress=progress)
        for name, split in dataset.splits.items()
    }
    scaler = fit_scaler([features[name] for name in TRAIN_PARTS if name in features])
    return PreparedData(
        root=root, dataset=dataset, labels=tuple(dataset.labels), features=features, scaler=scaler,
        feature_config=feature_config,
    )
