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

import pandas as pd

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


#: A trial's compute (search.trial_compute): energy so far (kWh), how it was obtained, MACs per 10 s, steps.
COMPUTE_COLUMNS: tuple[str, ...] = ("energy_kwh", "energy_source", "macs_per_10s", "train_steps")


def compute_columns(history: pd.DataFrame | None) -> dict[str, Any]:
    """energy_kwh, energy_source, macs_per_10s, train_steps of a trial's last report (NaN / None before any)."""
    out: dict[str, Any] = {
        "energy_kwh": math.nan,
        "energy_source": None,
        "macs_per_10s": math.nan,
        "train_steps": math.nan,
    }
    if history is None or history.empty:
        return out
    for column in ("energy_kwh", "macs_per_10s", "train_steps"):
        if column in history:
            values = pd.to_numeric(history[column], errors="coerce").dropna()
            if len(values):
                out[column] = float(values.max())  # cumulative figures: the last report's is the largest
    if "energy_source" in history:
        sources = history["energy_source"].dropna()
        if len(sources):
            out["energy_source"] = str(sources.iloc[-1])
    return out


def compute_totals(*frames: pd.DataFrame | None) -> dict[str, float]:
    """Sums over leaderboards' rows: energy_kwh, wall_seconds, train_steps (NaN-skipping), and rows counted."""
    out = {"energy_kwh": math.nan, "wall_seconds": math.nan, "train_steps": math.nan, "runs": 0}
    for frame in frames:
        if frame is None or frame.empty:
            continue
        out["runs"] += len(frame)
        for column in ("energy_kwh", "wall_seconds", "train_steps"):
            if column in frame:
                values = pd.to_numeric(frame[column], errors="coerce")
                if values.notna().any():
                    out[column] = float(values.sum()) + (0.0 if math.isnan(out[column]) else out[column])
    return out


def compute_line(stage: str, *frames: pd.DataFrame) -> str:
    """`compute, search: 6 runs, 0.0012 kWh (cpu: estimated ...), 6m10s of trial wall time, ...` over `frames`."""
    totals = compute_totals(*frames)
    energy = totals["energy_kwh"]
    sources = sorted({str(x) for f in frames for x in f.get("energy_source", pd.Series(dtype=object)).dropna()})
    macs = [
        float(x)
        for f in frames
        for x in pd.to_numeric(f.get("macs_per_10s", pd.Series(dtype=float)), errors="coerce").dropna()
    ]
    parts = [
        f"{totals['runs']} runs",
        (f"{energy:.4g} kWh" if math.isfinite(energy) else "energy not recorded")
        + (f" ({'; '.join(sources)})" if sources else ""),
        (f"{totals['wall_seconds'] / 60:.1f} min" if math.isfinite(totals["wall_seconds"]) else "?")
        + " of trial wall time (summed over runs)",
    ]
    if math.isfinite(totals["train_steps"]):
        parts.append(f"{int(totals['train_steps'])} training steps")
    if macs:
        low, high = min(macs) / 1e6, max(macs) / 1e6
        parts.append(f"{low:.4g} M MACs per 10 s clip" if low == high else f"{low:.4g}-{high:.4g} M MACs per 10 s clip")
    return f"compute, {stage}: " + ", ".join(parts)
