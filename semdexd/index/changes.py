"""The change queue: paths waiting to be (re)indexed, coalesced per path and debounced.

A path is handed out only after it has been quiet for its delay (a burst of saves becomes one
job) and never while an earlier job for the same path is still in flight (so writes for one path
are never reordered). Among the paths that are due, the most urgent go first (`Urgency`: a file
saved while the daemon runs before one asked for, before the backlog of a scan), then the
longest due. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import IntEnum


class Urgency(IntEnum):
    """Why a path is (re)indexed, most urgent first."""

    LIVE = 0        # saved (or deleted, moved) while the daemon runs: a person is working on it
    REQUESTED = 1   # `semdex reindex`, or a folder added by a reload
    BACKLOG = 2     # found by a scan: the first index, a reconcile


@dataclass
class _Entry:
    due: float
    force: bool
    urgency: Urgency


@dataclass(frozen=True)
class Change:
    """A path handed out by `ChangeQueue.take`."""

    path: str
    force: bool = False
    urgency: Urgency = Urgency.BACKLOG


class ChangeQueue:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._busy: set[str] = set()
        self._cond = threading.Condition()

    def touch(self, path: str, delay: float = 0.0, force: bool = False,
              urgency: Urgency = Urgency.BACKLOG) -> None:
        """(Re)schedule ``path`` ``delay`` seconds from now; a newer touch pushes the due time,
        and the path keeps the most urgent reason it was touched for."""
        with self._cond:
            old = self._entries.get(path)
            if old is not None:
                force, urgency = force or old.force, min(urgency, old.urgency)
            self._entries[path] = _Entry(time.monotonic() + delay, force, urgency)
            self._cond.notify_all()

    def take(self, max_items: int, timeout: float) -> list[Change]:
        """Up to ``max_items`` due, not-busy paths, most urgent first; marks them busy.

        Waits up to ``timeout`` seconds for the first one; returns [] if none became due.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                ready = [p for p, e in self._entries.items() if e.due <= now and p not in self._busy]
                if ready:
                    ready.sort(key=lambda p: (self._entries[p].urgency, self._entries[p].due))
                    out = []
                    for p in ready[:max_items]:
                        e = self._entries.pop(p)
                        out.append(Change(p, e.force, e.urgency))
                    self._busy.update(c.path for c in out)
                    return out
                if now >= deadline:
                    return []
                upcoming = [e.due for p, e in self._entries.items() if p not in self._busy]
                wake = min([deadline] + upcoming)
                self._cond.wait(max(0.005, wake - now))

    def give_back(self, changes: list[Change]) -> None:
        """Return ``changes`` taken but not started (due now, as they were)."""
        with self._cond:
            for c in changes:
                self._busy.discard(c.path)
                old = self._entries.get(c.path)
                force = c.force or (old.force if old else False)
                urgency = min(c.urgency, old.urgency) if old else c.urgency
                self._entries[c.path] = _Entry(old.due if old else time.monotonic(), force, urgency)
            self._cond.notify_all()

    def done(self, paths: list[str]) -> None:
        with self._cond:
            self._busy.difference_update(paths)
            self._cond.notify_all()

    def pending(self) -> int:
        """Paths waiting (not counting those in flight)."""
        with self._cond:
            return len(self._entries)

    def reading(self) -> bool:
        """A path is due (not held back by a debounce or a retry's back-off) or in flight."""
        with self._cond:
            now = time.monotonic()
            return bool(self._busy) or any(e.due <= now for e in self._entries.values())

    def in_flight(self) -> int:
        with self._cond:
            return len(self._busy)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._entries or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True
