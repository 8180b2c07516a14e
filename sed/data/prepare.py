"""Everything a training run reads, prepared once: dataset, cached features, targets' source, scaler.

One job: `prepare_data(config)` resolves the dataset root (the embedded data
unless `data` is given), loads and checks the DESED metadata and audio
(`DatasetError` here, before any training), builds or reuses the cached
log-mel features of every split (`sed.features.store.FeatureStore`) and fits
the per-band scaler on the training parts. A search driver calls it once so
that its trials only read the cache.

Trial start-up does not grow with the dataset:

- the scaler is fitted once per training data and stored beside the
  features (`<cache>/features/scaler-<key>.json`, the key a hash of the
  training parts' feature keys, which are content keys), so a second
  `prepare_data` reads 256 numbers instead of every training frame;
- `save_prepared` writes what a driver prepared (the checked splits, their
  feature keys, the scaler) to one JSON file, and `load_prepared` gives a
  trial the same `PreparedData` from it without statting or decoding any
  audio file and without reading any feature (the arrays are memory maps).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sed.config import TrainConfig
from sed.data.desed import DesedDataset, Event, Split, load_desed
from sed.data.errors import DatasetError
from sed.data.synth import ensure_embedded
from sed.features.logmel import FeatureConfig
from sed.features.scaler import Scaler, fit_scaler
from sed.features.store import FeatureStore
from sed.io import write_json

__all__ = ["TRAIN_PARTS", "PreparedData", "load_prepared", "prepare_data", "resolve_data_root", "save_prepared"]

#: Bump when fit_scaler would give other numbers for the same features (stored scalers stop matching).
SCALER_VERSION = 1
PREPARED_FORMAT = 1

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
    #: FeatureStore key and folder of each split's features (what `load_prepared` reopens).
    feature_keys: dict[str, str] = field(default_factory=dict)
    feature_root: Path | None = None

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
        layout=config.layout,
    )
    store = FeatureStore(None if cache is None else cache / "features")
    feature_config = FeatureConfig(n_mels=config.n_mels)
    features: dict[str, np.ndarray] = {}
    keys: dict[str, str] = {}
    for name, split in dataset.splits.items():
        features[name] = store.features(split, feature_config, progress=progress)
        assert store.last_stats is not None
        keys[name] = store.last_stats.key
    scaler = _stored_scaler(store.root, [(keys[n], features[n]) for n in TRAIN_PARTS if n in features])
    return PreparedData(
        root=root,
        dataset=dataset,
        labels=tuple(dataset.labels),
        features=features,
        scaler=scaler,
        feature_config=feature_config,
        feature_keys=keys,
        feature_root=store.root,
    )


def _stored_scaler(folder: Path, parts: list[tuple[str, np.ndarray]]) -> Scaler:
    """The scaler of these training features: read if stored, else fitted once and stored."""
    digest = hashlib.sha256(f"scaler-v{SCALER_VERSION}".encode())
    for key, _ in parts:
        digest.update(f"\0{key}".encode())
    path = folder / f"scaler-{digest.hexdigest()}.json"
    try:
        return Scaler.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        pass  # absent, half-written by a killed process, or foreign: fit it
    scaler = fit_scaler([array for _, array in parts])
    write_json(path, scaler.to_dict())
    return scaler


def save_prepared(data: PreparedData, path: Path | str) -> Path:
    """Write what `prepare_data` prepared to one JSON file (atomically) for `load_prepared`."""
    if data.feature_root is None or set(data.feature_keys) != set(data.dataset.splits):
        raise ValueError("save_prepared needs a PreparedData made by prepare_data (it knows the feature keys)")
    splits = {
        name: {
            "filenames": split.filenames,
            "audio_paths": [str(p) for p in split.audio_paths],
            "events": None
            if split.events is None
            else [[[e.onset, e.offset, e.label] for e in clip] for clip in split.events],
            "weak_labels": split.weak_labels,
            "durations": split.durations,
            "feature_key": data.feature_keys[name],
        }
        for name, split in data.dataset.splits.items()
    }
    payload = {
        "format": PREPARED_FORMAT,
        "root": str(data.root),
        "labels": list(data.labels),
        "missing_audio": data.dataset.missing_audio,
        "clipped_events": data.dataset.clipped_events,
        "layout": data.dataset.layout,
        "feature_root": str(data.feature_root),
        "feature_config": data.feature_config.to_dict(),
        "scaler": data.scaler.to_dict(),
        "splits": splits,
    }
    path = Path(path)
    write_json(path, payload)
    return path


def load_prepared(path: Path | str) -> PreparedData:
    """The `PreparedData` a driver saved: no audio file is statted or decoded, no feature read."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: cannot read the prepared-data file ({error}); prepare the data again") from None
    if payload.get("format") != PREPARED_FORMAT:
        raise DatasetError(f"{path}: prepared-data format {payload.get('format')!r} is not {PREPARED_FORMAT}")
    splits = {
        name: Split(
            name=name,
            filenames=list(item["filenames"]),
            audio_paths=[Path(p) for p in item["audio_paths"]],
            events=None
            if item["events"] is None
            else [[Event(float(on), float(off), str(label)) for on, off, label in clip] for clip in item["events"]],
            weak_labels=item["weak_labels"],
            durations=[float(d) for d in item["durations"]],
        )
        for name, item in payload["splits"].items()
    }
    labels = tuple(payload["labels"])
    dataset = DesedDataset(
        root=Path(payload["root"]),
        labels=labels,
        splits=splits,
        missing_audio=dict(payload["missing_audio"]),
        clipped_events=dict(payload.get("clipped_events", {})),
        layout=str(payload.get("layout", "desed2020")),
    )
    feature_config = FeatureConfig.from_dict(payload["feature_config"])
    store = FeatureStore(payload["feature_root"])
    keys = {name: item["feature_key"] for name, item in payload["splits"].items()}
    features = {name: store.open(keys[name], splits[name], feature_config) for name in splits}
    return PreparedData(
        root=dataset.root,
        dataset=dataset,
        labels=labels,
        features=features,
        scaler=Scaler.from_dict(payload["scaler"]),
        feature_config=feature_config,
        feature_keys=keys,
        feature_root=store.root,
    )
