"""`python -m search.report results/NAME`: a self-contained `report.html` of an experiment folder.

- `experiment` reads the folder (leaderboards, space, per-epoch histories),
  finished, partly finished or still running;
- `study` rebuilds the search as an in-memory Optuna study and computes the
  fANOVA hyperparameter importance per metric;
- `figures` draws the figures (matplotlib, Optuna's parallel coordinates);
- `page` writes the HTML (figures inlined as PNG, no network);
- `build` puts the sections together and writes `report.html` atomically.

`search.run` calls `build_report` at the end of every run.
"""

from .build import REPORT_FILE, build_report
from .experiment import ReportError, load_experiment

__all__ = ["REPORT_FILE", "ReportError", "build_report", "load_experiment"]
