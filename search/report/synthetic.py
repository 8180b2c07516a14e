"""A synthetic experiment folder, written the way search.run writes one (for the tests and the benchmark).

`write_synthetic_experiment(folder, n_trials, ...)` writes `sedtune_run.json`,
a trial folder per search trial (`params.json`, `progress.csv` with one row
per epoch: ASHA-like stops at the rungs), `search.parquet` (through
`search.rows.search_frame`, the function search.run uses),
`final.parquet` (rows of `search.rows.final_row`, with a `control` column:
the no-augmentation control, labelled `none` like Table 1's first row) and
`final_summary.parquet` (`search.summary.summarize_final`). Scores are drawn
from a seeded generator; they mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import leaderboard as lb
from .. import trial_spec
from ..rows import TrialRecord, final_row, search_frame
from ..space import CONTROL_ID, config_id, parse_space
from ..summary import summarize_final

CLASSES = (
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

SPACE_TEXT = """\
name: synthetic
description: synthetic experiment for the report's tests and benchmark
metric: [val_macro_f1, val_psds]
mode: max
num_samples: {n}
searcher: {{kind: optuna-tpe, seed: 1}}
scheduler: {{kind: asha, max_epochs: 9, grace_period: 1, reduction_factor: 3}}
resources: {{cpu: 1, gpu: 0}}
fixed: {{embedded_size: tiny, device: cpu, regularization: l2, compute_val_psds: true}}
params:
  augmentation: {{choice: [random, vat, mixup]}}
  locations: {{choice: [input, latent]}}
  noise_scale: {{loguniform: [0.01, 1.0], when: {{augmentation: random}}}}
  epsilon: {{loguniform: [0.01, 1.0], when: {{augmentation: vat}}}}
  mixup_alpha: {{uniform: [0.1, 1.0], when: {{augmentation: mixup}}}}
  consistency_weight: {{loguniform: [0.1, 10.0]}}
final: {{top_k: {top_k}, seeds: [1, 2, 3], epochs: 9}}
"""


def write_synthetic_experiment(
    folder: Path, n_trials: int = 100, top_k: int = 3, seed: int = 0, leaderboards: bool = True
) -> Path:
    """Write the experiment (module docstring) into `folder`; `leaderboards=False`: trial folders only (a live run)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    space_path = folder / "synthetic.yaml"
    text = SPACE_TEXT.format(n=n_trials, top_k=top_k)
    space_path.write_text(text)
    space = parse_space(text, str(space_path))
    (folder / "sedtune_run.json").write_text(
        json.dumps(
            {
                "space_path": str(space_path),
                "space_text": text,
                "num_samples": None,
                "max_epochs": None,
                "data": None,
                "cache_dir": None,
                "created": "synthetic",
            }
        )
    )
    records = []
    for i in range(n_trials):
        aug = str(rng.choice(["random", "vat", "mixup"]))
        config: dict = {
            **space.constants(),
            "augmentation": aug,
            "locations": str(rng.choice(["input", "latent"])),
            "consistency_weight": float(10 ** rng.uniform(-1, 1)),
        }
        key = {"random": "noise_scale", "vat": "epsilon", "mixup": "mixup_alpha"}[aug]
        config[key] = float(rng.uniform(0.1, 1.0)) if aug == "mixup" else float(10 ** rng.uniform(-2, 0))
        epochs = int(rng.choice([1, 3, 9], p=[0.5, 0.3, 0.2]))
        ceiling = rng.uniform(0.2, 0.5)
        steps = np.arange(1, epochs + 1)
        f1 = ceiling * (1 - np.exp(-steps / 3)) + rng.normal(0, 0.01, epochs)
        history = pd.DataFrame(
            {
                "epoch": steps,
                "training_iteration": steps,
                "val_macro_f1": f1,
                "val_psds": f1 * 1.4 + rng.normal(0, 0.02, epochs),
                "time_total_s": steps * 2.0,
            }
        )
        trial_id = f"{i:05d}"
        trial_dir = folder / f"trial_{trial_id}"
        trial_dir.mkdir(exist_ok=True)
        (trial_dir / "params.json").write_text(json.dumps(config))
        history.to_csv(trial_dir / "progress.csv", index=False)
        records.append(TrialRecord(trial_id, "TERMINATED", config, history, None, str(trial_dir)))
    if not leaderboards:
        return folder
    search = search_frame(records, space)
    search["command"] = [
        f"python -m sed.train --preset baseline --set seed=2020 # trial {t}" for t in search["trial_id"]
    ]
    lb.write_parquet_atomic(
        search, folder / lb.SEARCH_FILE, lb.run_metadata(text, "search", space.metrics, versions={})
    )
    rows = []
    top = search.head(top_k)
    configs = [
        (rank + 1, json.loads(row.config_json), str(row.trial_id), False)
        for rank, row in enumerate(top.itertuples(index=False))
    ]
    control = {**space.constants(), "augmentation": "none", trial_spec.LABEL: "none", trial_spec.CONTROL: True}
    configs.append((top_k + 1, control, "", True))
    for rank, config, trial_id, is_control in configs:
        cid = CONTROL_ID if is_control else config_id(config)
        for s in (1, 2, 3):
            point = {
                **config,
                "seed": s,
                trial_spec.CONFIG_ID: cid,
                trial_spec.RANK: rank,
                trial_spec.SEARCH_TRIAL_ID: trial_id,
            }
            base = 0.25 if is_control else 0.35
            f1 = float(base + rng.normal(0, 0.02))
            result = {
                "epoch": 9,
                "time_total_s": 18.0,
                "selected_val_macro_f1": f1 + 0.05,
                "selected_val_psds": f1 * 1.5 + 0.05,
                "model_epoch": 8,
                "eval_macro_f1": f1,
                "eval_micro_f1": f1 + 0.1,
                "eval_psds": f1 * 1.5,
                "eval_psds_ct": f1 * 1.3,
                "eval_psds_macro": f1 * 1.1,
                "eval_per_class_f1_json": json.dumps({c: float(rng.uniform()) for c in CLASSES}),
            }
            row = final_row(
                point,
                result,
                "COMPLETED",
                None,
                f"f{rank}{s}",
                folder / "final" / f"trial_f{rank}{s}",
                list(space.params),
            )
            assert row["control"] == is_control  # final_row reads `_control`
            row["command"] = (
                f"python -m sed.train --preset baseline --set seed={s} --out results/reproduce/{cid}-seed{s}"
            )
            rows.append(row)
    final = pd.DataFrame(rows)
    meta = lb.run_metadata(text, "final", space.metrics, versions={})
    lb.write_parquet_atomic(final, folder / lb.FINAL_FILE, meta)
    lb.write_parquet_atomic(summarize_final(final), folder / lb.FINAL_SUMMARY_FILE, meta)
    return folder
