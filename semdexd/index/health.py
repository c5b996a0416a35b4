"""Write health: is the store (or the disk under it) accepting writes, and since when not.

The indexer's write stage owns one `WriteHealth`. A write that fails because the store is
unavailable (disk full, a dead Chroma server, a read-only file system) marks it degraded with the
reason; the writer keeps the failed group and retries it with back-off, and the first successful
write marks it healthy again. `status` reads `snapshot()`. Thread-safe.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from semdexd.backoff import Backoff

WRITE_RETRY = Backoff(first_s=0.5, max_s=8.0)  # a failed write; a freed disk is noticed within 8 s

_UNAVAILABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ECONNREFUSED,
                       errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.EHOSTUNREACH}
_UNAVAILABLE_WORDS = ("disk is full", "no space left", "disk quota", "read-only", "readonly",
                      "database is locked", "disk i/o error", "compaction", "hnsw segment",
                      "could not connect", "connection refused", "connection reset", "connecterror",
                      "remoteprotocolerror", "readtimeout", "connecttimeout", "server disconnected",
                      "all connection attempts failed", "backfill")


def store_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the store or its disk cannot take writes right now (retry later),
    False for an error about the data itself (a bad value: retrying the same write cannot help)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _UNAVAILABLE_ERRNOS:
            return True
        if isinstance(e, (ConnectionError, TimeoutError, sqlite3.OperationalError)):
            return True
        text = f"{type(e).__name__}: {e}".lower()
        if any(w in text for w in _UNAVAILABLE_WORDS):
            return True
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 8:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def describe(exc: BaseException) -> str:
    """A one-line reason a user can act on."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = ""
    low = text.lower()
    if "full" in low or "no space" in low or "compaction" in low or "hnsw" in low:
        hint = " (the data dir's disk is full? indexing resumes by itself once there is space)"
    elif "connect" in low or "refused" in low:
        hint = " (the Chroma server is down? indexing resumes by itself once it answers)"
    return f"store write failed: {type(exc).__name__}: {text[:300]}{hint}"


@dataclass(frozen=True)
class HealthSnapshot:
    degraded: bool
    reason: str | None
    since: float | None          # wall-clock time of the first failure of this outage
    failures: int                # failed attempts in this outage
    retry_in_s: float | None     # until the next attempt

    def as_dict(self) -> dict[str, Any]:
        return {"degraded": self.degraded, "reason": self.reason, "since": self.since,
                "failures": self.failures, "retry_in_s": self.retry_in_s}


class WriteHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._since: float | None = None
        self._failures = 0
        self._next_at: float | None = None

    @property
    def degraded(self) -> bool:
        with self._lock:
            return self._reason is not None

    def failed(self, reason: str) -> float:
        """Record a failed write; return how long to wait before the next attempt (back-off)."""
        with self._lock:
            if self._reason is None:
                self._since = time.time()
            self._reason = reason
            self._failures += 1
            delay = WRITE_RETRY.delay(self._failures)
            self._next_at = time.monotonic() + delay
            return delay

    def recovered(self) -> float | None:
        """Record a successful write; return the outage's length in seconds if there was one."""
        with self._lock:
            if self._reason is None:
                return None
            took = time.time() - (self._since or time.time())
            self._reason, self._since, self._failures, self._next_at = None, None, 0, None
            return took

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            retry = None if self._next_at is None else max(0.0, round(self._next_at - time.monotonic(), 1))
            return HealthSnapshot(self._reason is not None, self._reason, self._since, self._failures, retry)
