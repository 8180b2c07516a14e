"""Keep freed host memory for reuse: CPU training without a page fault per activation.

PyTorch's CPU allocator asks the C library for every tensor and gives it back
when the tensor dies. glibc serves blocks above its mmap threshold (at most
32 MiB) with a fresh `mmap` and returns them with `munmap`, so every large
activation of a training step -- the first conv block's are [24, 16, 628,
128] floats, 123 MiB each -- is new memory that the kernel zero-fills page by
page on first touch. Measured on the 2-core CI machine (torch 2.14.1, 2
threads; `benchmarks/README.md`): allocating and filling one such tensor
costs 28 ms, 4 ms once the memory is reused; a full-size training step takes
1.17 s instead of 1.71-1.85 s, for a peak RSS of 3.75 GB instead of 3.0 GB.

`reuse_freed_memory()` sets, process-wide and through `mallopt(3)`:
`M_MMAP_MAX = 0` (no block is served by mmap: everything comes from the
heap, where freed blocks are reused), `M_TRIM_THRESHOLD` = 1 GiB and
`M_TOP_PAD` = 64 MiB (the heap is not shrunk after each step only to be grown
again). The steady state of training repeats the same allocations, so the
peak RSS settles after the first steps (see the benchmark) and is not given
back to the OS until the process ends. `restore_default_malloc()` sets
glibc's default values again and trims the heap (tests use it; glibc's
dynamic mmap threshold stays off once any of these was set).
`benchmarks/step_time.py --host-memory both` times the two settings in two
fresh processes instead.

Used by `sed.training.trainer.Trainer` on the CPU when `TrainConfig.reuse_host_memory`
is true (the default). Only glibc has these knobs: elsewhere (macOS, musl)
the call does nothing and says why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20

# glibc's defaults, for restore_default_malloc()
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_TOP_PAD = 128 * 1024

_state = {"active": False}


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def reuse_freed_memory() -> tuple[bool, str]:
    """Serve every allocation from the reusable heap; (applied?, why not / what)."""
    libc = _libc()
    if libc is None:
        return False, f"not glibc on Linux ({platform.system()} {platform.libc_ver()[0] or 'unknown libc'})"
    ok = all(
        libc.mallopt(param, value) == 1
        for param, value in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    )
    _state["active"] = ok
    return ok, "mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB, M_TOP_PAD=64 MiB" if ok else "mallopt refused"


def restore_default_malloc() -> bool:
    """glibc's defaults again; the heap's free memory is given back (malloc_trim)."""
    libc = _libc()
    if libc is None:
        return False
    libc.mallopt(M_MMAP_MAX, _DEFAULT_MMAP_MAX)
    libc.mallopt(M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
    libc.mallopt(M_TOP_PAD, _DEFAULT_TOP_PAD)
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    _state["active"] = False
    return True


def is_active() -> bool:
    return _state["active"]
