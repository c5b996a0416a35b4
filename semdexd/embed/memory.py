"""The daemon's C heap (glibc malloc): fewer arenas so that freed memory is reused across threads
(`limit_arenas`), and freed memory given back to the OS after a burst of work such as the
initial index (`trim`). Elsewhere than Linux/glibc both do nothing."""

from __future__ import annotations

import ctypes
import gc
import sys

M_ARENA_MAX = -8   # mallopt parameter (malloc.h)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def limit_arenas(count: int) -> bool:
    """Let this process's threads share at most ``count`` malloc arenas (0: leave glibc's default,
    8 per core). Applies to arenas created afterwards, so call it before starting threads. True
    when the C library took it."""
    libc = _libc()
    if count <= 0 or libc is None or getattr(libc, "mallopt", None) is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, count))


def trim() -> bool:
    """Collect garbage and ask glibc to return free heap pages of every arena (``malloc_trim``).
    True when the C library offered it (Linux/glibc); elsewhere only the collection happens."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    trim_fn = getattr(libc, "malloc_trim", None)
    if trim_fn is None:
        return False
    trim_fn(0)
    return True
