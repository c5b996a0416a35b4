"""A child process of the daemon never outlives it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us when the parent goes; exit now if it already went.
    ``parent_pid`` 0 (a remote worker, started by hand or by a service manager): nothing to do."""
    if not parent_pid:
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(0)
