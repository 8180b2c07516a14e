"""Errors a user can cause with their data.

``DatasetError`` lives here (not in :mod:`sed.data.desed`) so that the audio
reader and the feature cache can raise it without importing the metadata
parser; :mod:`sed.data.desed` re-exports it, so ``from sed.data.desed import
DatasetError`` and ``from sed.data.errors import DatasetError`` are the same
class.
"""

from __future__ import annotations

from sed.errors import UserError


class DatasetError(UserError):
    """Bad dataset input (metadata or audio).

    The message names the offending file (and TSV line where there is one)
    and says how to fix it.
    """
