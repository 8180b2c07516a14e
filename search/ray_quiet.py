"""Silence Ray Tune's experiment-start box ("Configuration for experiment", "View detailed results here")
when Ray's own output is off (search.run without --verbose / --debug).

Ray 2.x's new output engine (`RAY_AIR_NEW_OUTPUT=1`, set by `search.tuner.ray_environment`)
prints that box from `TuneTerminalReporter.experiment_started` at every `Tuner.fit`,
whatever the verbosity: the search stage, the final stage and each restore printed it.
With `verbose=0` (`AirVerbosity.SILENT`) the patched method prints nothing; at any other
verbosity it is Ray's own. sedtune's status line already names the stage and the folder.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_sedtune_quiet_start"


def quiet_experiment_start() -> bool:
    """Patch Ray's terminal reporter once per process; False when this Ray has no such reporter."""
    try:
        from ray.tune.experimental import output
    except ImportError:  # another Ray layout: nothing to silence
        return False
    reporter = getattr(output, "TuneTerminalReporter", None)
    silent = getattr(getattr(output, "AirVerbosity", None), "SILENT", None)
    if reporter is None or silent is None or not hasattr(reporter, "experiment_started"):
        return False
    if getattr(reporter, _PATCHED, False):
        return True
    original = reporter.experiment_started

    def experiment_started(self: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_verbosity", None) == silent:
            return None
        return original(self, *args, **kwargs)

    reporter.experiment_started = experiment_started
    setattr(reporter, _PATCHED, True)
    return True
