"""Test-session setup: a private cache directory and Ray without auth tokens.

Every test session gets its own `SEDTUNE_CACHE` (the embedded `tiny` dataset
and its features are built there once and shared by all tests), so tests never
read or write a user's real cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="sedtune-test-cache-"))
os.environ["SEDTUNE_CACHE"] = str(_SESSION_CACHE)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Tiny test models are dominated by small matrix products (GRU steps), where a
# second OpenMP thread costs more in synchronisation than it gains.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def session_cache() -> Path:
    return _SESSION_CACHE


@pytest.fixture(scope="session")
def tiny_data_root(session_cache: Path) -> Path:
    """The embedded `tiny` dataset, generated once per test session."""
    from sed.data.synth import ensure_embedded

    return ensure_embedded("tiny", seed=0, cache_dir=session_cache)
