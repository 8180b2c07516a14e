"""Where sedtune keeps what it builds once per machine, and the lock that makes it once.

`cache_root` is the one answer to "which folder": an explicit `cache_dir`,
else `$SEDTUNE_CACHE`, else `~/.cache/sedtune`. The embedded datasets live
under `<root>/embedded/`, the log-mel features under `<root>/features/`.

`exclusive_lock` is the one lock: an fcntl (flock) exclusive lock on a lock
file, so that concurrent processes (Ray trials, a driver and its trials,
several users of one machine) build an entry once and the others wait.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_root", "exclusive_lock"]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$SEDTUNE_CACHE``, else ``~/.cache/sedtune``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("SEDTUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sedtune"


@contextmanager
def exclusive_lock(lock_path: Path, waiting_message: str | None = None) -> Iterator[float]:
    """Hold an exclusive flock on ``lock_path``; yields the seconds spent waiting for it.

    flock is per open file description and released by the kernel when the
    process dies, so a crashed builder never leaves the entry locked. Lock
    files are never deleted (deleting them would let two processes lock
    different inodes of the same name). ``waiting_message`` is printed to
    stderr when another process holds the lock.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.perf_counter()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting_message:
                print(waiting_message, file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.perf_counter() - start
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
