"""The errors a user can cause and fix, under one base (`UserError`).

Every command (`sed.train`, `sed.predict`, `sed.score`, `search.run`, `search.report`)
catches `UserError` only and exits 2 with its one-paragraph message; anything else is a
bug and shows its traceback. A `UserError` is a `ValueError`, so code that guards a
value with `except ValueError` keeps working. Its subclasses: `ConfigError` (a config
key, here), `UsageError` (the command line, here), `sed.data.errors.DatasetError`,
`sed.eval.events.MetricsError`, `sed.eval.postprocess.PostprocessError`,
`sed.predict.PredictError`, `sed.score.ScoreInputError`, and in `search`: `SpaceError`,
`ClusterError`, `StorageError`, `ReportError`.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake the user can fix; the message names the file, key or option and the fix."""


class ConfigError(UserError):
    """A configuration value a user supplied is wrong; the message names the key."""


class UsageError(UserError):
    """A command-line mistake; the message says how to fix it."""
