"""Giving freed memory back to the OS (the daemon after a burst of work, e.g. the initial index)."""

from __future__ import annotations

import ctypes
import gc
import sys


def trim() -> bool:
    """Collect garbage and ask glibc to return free heap pages of every arena (``malloc_trim``).
    True when the C library offered it (Linux/glibc); elsewhere only the collection happens."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    trim_fn = getattr(libc, "malloc_trim", None)
    if trim_fn is None:
        return False
    trim_fn(0)
    return True
