"""The change queue: paths waiting to be (re)indexed, coalesced per path and debounced.

A path is handed out only after it has been quiet for its delay (a burst of saves becomes one
job) and never while an earlier job for the same path is still in flight (so writes for one path
are never reordered). Thread-safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _Entry:
    due: float
    force: bool


class ChangeQueue:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._busy: set[str] = set()
        self._cond = threading.Condition()

    def touch(self, path: str, delay: float = 0.0, force: bool = False) -> None:
        """(Re)schedule ``path`` ``delay`` seconds from now; a newer touch pushes the due time."""
        with self._cond:
            old = self._entries.get(path)
            self._entries[path] = _Entry(time.monotonic() + delay, force or (old.force if old else False))
            self._cond.notify_all()

    def take(self, max_items: int, timeout: float) -> list[tuple[str, bool]]:
        """Up to ``max_items`` due, not-busy paths as (path, force); marks them busy.

        Waits up to ``timeout`` seconds for the first one; returns [] if none became due.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                ready = [p for p, e in self._entries.items() if e.due <= now and p not in self._busy]
                if ready:
                    ready.sort(key=lambda p: self._entries[p].due)
                    out = [(p, self._entries.pop(p).force) for p in ready[:max_items]]
                    self._busy.update(p for p, _ in out)
                    return out
                if now >= deadline:
                    return []
                upcoming = [e.due for p, e in self._entries.items() if p not in self._busy]
                wake = min([deadline] + upcoming)
                self._cond.wait(max(0.005, wake - now))

    def done(self, paths: list[str]) -> None:
        with self._cond:
            self._busy.difference_update(paths)
            self._cond.notify_all()

    def pending(self) -> int:
        """Paths waiting (not counting those in flight)."""
        with self._cond:
            return len(self._entries)

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
