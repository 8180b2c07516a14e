"""The error a user's configuration value gets (`ConfigError`); data errors are `sed.data.errors`."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value a user supplied is wrong; the message names the key."""
