"""The energy a training run uses, with CodeCarbon's offline tracker (DCASE task 4 asks for it since 2023).

One job: start CodeCarbon's ``OfflineEmissionsTracker`` around a run, read the
energy used so far (kWh) whenever asked, and say where the figure comes from.
No network is used (the offline tracker; its carbon intensity comes from the
country, ``TrainConfig.energy_country``, ISO 3166-1 alpha-3), nothing is
written to disk or sent (``output_methods=[]``), and only this process (and its
children) is counted (``tracking_mode="process"``): trials sharing a machine
each count their own CPU share.

What CodeCarbon measures and what it estimates (codecarbon 3.3.2,
``codecarbon.external.hardware`` / ``ram``), written per run in
``energy_source``:

* CPU: **measured** through Intel RAPL (``/sys/class/powercap/intel-rapl``)
  when the files are readable; otherwise **estimated** as the process's CPU
  load x a TDP constant: the CPU model's TDP from CodeCarbon's table, or, for
  a model it does not know, a default of 4 W per thread (on this project's
  CI machines, an AMD EPYC with 2 threads without readable RAPL: 8 W x load).
* GPU: **measured** through NVML (the board's power draw) when an NVIDIA GPU
  is visible. NVML reports the whole GPU: trials sharing a GPU each count all
  of it, so their sum overcounts by the number of trials per GPU.
* RAM: always **estimated** from the memory size (CodeCarbon's DIMM model, a
  constant power over the run).

``energy_source`` reads e.g. ``cpu: estimated (cpu_load x 8 W TDP constant,
AMD EPYC); gpu: none; ram: estimated (DIMM model)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["EnergyMeter", "EnergyReading", "describe_source"]


@dataclass(frozen=True)
class EnergyReading:
    """Energy so far (kWh, added to what earlier attempts of the run used) and where it comes from."""

    kwh: float
    source: str


def describe_source(tracker: Any) -> str:
    """What a started tracker measures and what it estimates (module docstring)."""
    cpu = gpu = "none"
    ram = "estimated (DIMM model)"
    for device in getattr(tracker, "_hardware", []):
        kind = type(device).__name__
        if kind == "CPU":
            mode = str(getattr(device, "_mode", "?"))
            model = getattr(device, "_model", "?")
            if mode in ("intel_rapl", "intel_power_gadget", "windows_emi", "apple_powermetrics"):
                cpu = f"measured ({mode})"
            else:
                cpu = f"estimated ({mode} x {getattr(device, '_tdp', '?')} W TDP constant, {model})"
        elif kind in ("GPU", "AllGPUDevices"):
            gpu = "measured (NVML, whole GPU)"
        elif kind in ("AppleSiliconChip",):
            cpu = "measured (powermetrics)"
        elif kind == "RAM" and getattr(device, "_force_ram_power", None):
            ram = f"estimated ({device._force_ram_power} W given)"
    return f"cpu: {cpu}; gpu: {gpu}; ram: {ram}"


class EnergyMeter:
    """CodeCarbon's offline tracker around a run; `offset_kwh`: what earlier attempts of it used (resume)."""

    def __init__(self, country: str = "FRA", offset_kwh: float = 0.0, measure_power_secs: float = 15.0) -> None:
        self.country = country
        self.offset_kwh = float(offset_kwh) if math.isfinite(offset_kwh) else 0.0
        self.measure_power_secs = measure_power_secs
        self._tracker: Any = None
        self.source = "not measured"

    def start(self) -> EnergyMeter:
        from codecarbon import OfflineEmissionsTracker

        # CodeCarbon logs its hardware guesses as warnings; energy_source says the same once per run
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country,
            output_methods=[],  # nothing written (no emissions.csv), nothing sent
            log_level="error",
            tracking_mode="process",
            measure_power_secs=self.measure_power_secs,
            allow_multiple_runs=True,
        )
        self._tracker.start()
        self.source = describe_source(self._tracker)
        return self

    def read(self) -> EnergyReading:
        """kWh since `start` (plus the offset), measured up to now."""
        if self._tracker is None:
            return EnergyReading(self.offset_kwh, self.source)
        self._tracker.flush()  # measures up to now (CodeCarbon's public call; nothing is written offline)
        total = getattr(getattr(self._tracker, "_total_energy", None), "kWh", math.nan)
        return EnergyReading(self.offset_kwh + float(total), self.source)

    def stop(self) -> EnergyReading:
        if self._tracker is None:
            return EnergyReading(self.offset_kwh, self.source)
        self._tracker.stop()
        data = self._tracker.final_emissions_data
        tracker, self._tracker = self._tracker, None
        kwh = float(getattr(data, "energy_consumed", math.nan)) if data is not None else math.nan
        if not math.isfinite(kwh):
            kwh = float(getattr(getattr(tracker, "_total_energy", None), "kWh", math.nan))
        return EnergyReading(self.offset_kwh + kwh, self.source)
