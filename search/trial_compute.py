"""A trial's compute figures, reported with every epoch: energy (CodeCarbon), MACs per 10 s clip, steps.

`search.trainable` starts a `sed.training.energy.EnergyMeter` when a trial
attempt starts and adds to each epoch's report `energy_kwh` (the trial's energy
so far: this attempt's plus what earlier attempts used, kept beside the
trainer's checkpoint in `ENERGY_FILE`), `energy_source` (measured or
estimated, and how), `macs_per_10s` (sed.nn.macs) and `train_steps` (the
optimizer steps so far). The leaderboards take the last report's values
(`search.rows`): a trial stopped by ASHA keeps the energy of the epochs it ran.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ENERGY_FILE = "energy.json"


def energy_offset(checkpoint_dir: str | Path) -> float:
    """kWh used by the earlier attempts of a trial (0 when the checkpoint has no record)."""
    path = Path(checkpoint_dir) / ENERGY_FILE
    try:
        value = float(json.loads(path.read_text())["energy_kwh"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def save_energy(checkpoint_dir: str | Path, metrics: dict[str, Any]) -> None:
    if isinstance(metrics.get("energy_kwh"), float):
        (Path(checkpoint_dir) / ENERGY_FILE).write_text(json.dumps({"energy_kwh": metrics["energy_kwh"]}))


def start_meter(config: Any, offset: float) -> Any:
    """A started EnergyMeter (None with `track_energy=false`)."""
    if not config.track_energy:
        return None
    from sed.training.energy import EnergyMeter

    return EnergyMeter(config.energy_country, offset_kwh=offset).start()


def compute_metrics(trainer: Any, meter: Any) -> dict[str, Any]:
    """energy_kwh, energy_source, macs_per_10s, train_steps of a trial so far."""
    from sed.nn.macs import macs_per_10s

    out: dict[str, Any] = {
        "macs_per_10s": float(macs_per_10s(trainer.config, len(trainer.data.labels))),
        "train_steps": int(trainer.step),
    }
    if meter is None:
        out["energy_source"] = "not tracked (track_energy=false)"
        return out
    reading = meter.read()
    out["energy_kwh"] = float(reading.kwh)
    out["energy_source"] = reading.source
    return out
