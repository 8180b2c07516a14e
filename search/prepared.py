"""The data the driver prepared, handed to the trials: one `sed.data.prepare.save_prepared` file per dataset.

The driver builds the dataset, the cached features and the scaler once
(`search.run.prepare_datasets`) and writes each as
`OUT/NAME/prepared/<key>.json`, the key a hash of the trial config's data
fields (`search.space.DATA_KEYS`), the `--data` root and the cache folder.
A trial whose data fields give an existing file reads it with
`load_prepared` -- no audio file statted or decoded, no feature read, no
scaler fitted, so its start-up does not grow with the dataset
(benchmarks/README.md, "Trial start-up"). A trial without one (a data
field the driver could not enumerate, or a cluster node that sees neither
the experiment folder nor the cache at the driver's paths, or one whose
`ray start` environment sets `SEDTUNE_NODE_CACHE`: `node_cache_dir`)
prepares the data itself, as before, and says so on stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from sed.config import TrainConfig
from sed.data.prepare import PreparedData, load_prepared, save_prepared

from .space import DATA_KEYS

PREPARED_DIR = "prepared"
#: Set in the environment of a node's `ray start`: that node's trials keep their features in this
#: cache instead of the driver's --cache-dir (nodes that share no disk). The first trial there
#: builds them under the cache lock (sed.features.store); the others wait and read them.
NODE_CACHE_ENV = "SEDTUNE_NODE_CACHE"


def node_cache_dir(cache_dir: str | None) -> str | None:
    """The cache a trial on this node uses: `$SEDTUNE_NODE_CACHE` when the node sets it, else the driver's."""
    node = os.environ.get(NODE_CACHE_ENV)
    if node and node != cache_dir:
        print(
            f"sedtune: this node's cache is {node} (${NODE_CACHE_ENV}); the data is prepared here, its "
            "features built once per node under the cache lock",
            file=sys.stderr,
            flush=True,
        )
        return node
    return cache_dir


def data_key(config: TrainConfig, data_root: str | None, cache_dir: str | None) -> str:
    """Which dataset a trial reads: its data fields, the `--data` root and the cache folder."""
    fields: dict[str, Any] = {k: getattr(config, k) for k in DATA_KEYS}
    text = json.dumps({"fields": fields, "data_root": data_root, "cache_dir": cache_dir}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def prepared_path(folder: Path, config: TrainConfig, data_root: str | None, cache_dir: str | None) -> Path:
    return Path(folder) / f"{data_key(config, data_root, cache_dir)}.json"


def save_for_trials(
    folder: Path, config: TrainConfig, data: PreparedData, data_root: str | None, cache_dir: str | None
) -> Path:
    """Write the driver's prepared data where the trials of `config`'s dataset look for it."""
    return save_prepared(data, prepared_path(folder, config, data_root, cache_dir))


def load_for_trial(
    folder: str | Path | None, config: TrainConfig, data_root: str | None, cache_dir: str | None
) -> PreparedData | None:
    """The driver's prepared data for this trial's dataset, or None (the trial prepares it itself)."""
    if folder is None:
        return None
    path = prepared_path(Path(folder), config, data_root, cache_dir)
    if not path.is_file():
        return None
    try:
        return load_prepared(path)
    except (OSError, ValueError) as exc:  # e.g. the cache is not at the driver's path on this node
        print(f"sedtune: {path}: {exc}; preparing the data in the trial instead", file=sys.stderr, flush=True)
        return None
