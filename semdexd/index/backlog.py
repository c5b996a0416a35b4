"""The backlog of meaning: files whose words are committed and whose chunks await vectors.

Embedding is the slow stage (a file's words are searchable long before its vectors exist), so
its order matters: files saved while the daemon runs go first, then those asked for (`semdex
reindex`, a folder added by a reload), then the scan's backlog; within each, recently modified
files before old ones and small files before large ones (a note before an archive). A file is
handed out once at a time (`take` ... `done`); one added again meanwhile (edited again) is
handed out again after `done`. Thread-safe.
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass

from semdexd.index.changes import Urgency

RECENT_S = (7 * 86400, 90 * 86400)      # modified within a week, within a season, or before
SMALL_BYTES = (64 << 10, 1 << 20)       # under 64 KB, under 1 MB, or larger


@dataclass(frozen=True)
class Waiting:
    """Why and what: the file's urgency, modification time (ns) and size (bytes)."""

    urgency: Urgency
    mtime_ns: int
    size: int

    def key(self, now_s: float) -> tuple[int, int, int, int]:
        age = now_s - self.mtime_ns / 1e9
        recent = sum(age > limit for limit in RECENT_S)
        large = sum(self.size >= limit for limit in SMALL_BYTES)
        return int(self.urgency), recent, large, -self.mtime_ns


class Backlog:
    """Files awaiting vectors, best first (see the module docstring).

    A heap ordered by each file's `Waiting.key` (taken when it was added) and path: `take` costs
    O(log n) per file handed out, whatever the backlog's size. Entries superseded by a newer
    `add`, or discarded, stay in the heap until they surface or the heap is rebuilt."""

    def __init__(self) -> None:
        self._waiting: dict[str, Waiting] = {}
        self._stamp: dict[str, int] = {}          # each waiting path's live heap entry
        self._heap: list[tuple[tuple[int, int, int, int], str, int]] = []
        self._added = 0
        self._not_before: dict[str, float] = {}   # monotonic time before which a path is held back
        self._busy: set[str] = set()
        self._cond = threading.Condition()

    def add(self, path: str, waiting: Waiting, delay: float = 0.0) -> None:
        """``path`` has chunks awaiting vectors (again); it keeps its most urgent reason."""
        with self._cond:
            old = self._waiting.get(path)
            if old is not None and old.urgency < waiting.urgency:
                waiting = Waiting(old.urgency, waiting.mtime_ns, waiting.size)
            self._waiting[path] = waiting
            self._added += 1
            self._stamp[path] = self._added
            heapq.heappush(self._heap, (waiting.key(time.time()), path, self._added))
            if len(self._heap) > 2 * len(self._waiting) + 64:
                self._heap = [e for e in self._heap if self._stamp.get(e[1]) == e[2]]
                heapq.heapify(self._heap)
            if delay > 0:
                self._not_before[path] = time.monotonic() + delay
            else:
                self._not_before.pop(path, None)
            self._cond.notify_all()

    def take(self, max_files: int, timeout: float, upto: Urgency = Urgency.BACKLOG) -> list[tuple[str, Waiting]]:
        """Up to ``max_files`` of the best waiting files not in flight (marked in flight), with
        why they wait, of urgency ``upto`` or more urgent; waits up to ``timeout`` s for one; []
        if none."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                out = self._ready(max_files, upto, now)
                if out:
                    return out
                if now >= deadline:
                    return []
                held = [t for p, t in self._not_before.items() if p not in self._busy]
                self._cond.wait(max(0.005, min([deadline] + held) - now))

    def _ready(self, max_files: int, upto: Urgency, now: float) -> list[tuple[str, Waiting]]:
        """Pop the best ready files (the caller holds the lock); in flight or held back ones are
        put back."""
        out: list[tuple[str, Waiting]] = []
        aside = []
        while self._heap and len(out) < max_files:
            entry = self._heap[0]
            key, path, stamp = entry
            if self._stamp.get(path) != stamp:        # superseded or gone
                heapq.heappop(self._heap)
                continue
            if key[0] > upto:
                break
            heapq.heappop(self._heap)
            if path in self._busy or self._not_before.get(path, 0.0) > now:
                aside.append(entry)
                continue
            del self._stamp[path]
            self._not_before.pop(path, None)
            out.append((path, self._waiting.pop(path)))
        for entry in aside:
            heapq.heappush(self._heap, entry)
        self._busy.update(p for p, _ in out)
        return out

    def give_back(self, taken: list[tuple[str, Waiting]]) -> None:
        """Return files taken but not started, with why they wait."""
        self.done([path for path, _ in taken])
        for path, waiting in taken:
            self.add(path, waiting)

    def done(self, paths: list[str]) -> None:
        """``paths`` are no longer in flight (whatever became of them)."""
        with self._cond:
            self._busy.difference_update(paths)
            self._cond.notify_all()

    def discard(self, path: str) -> None:
        """``path`` no longer awaits anything (deleted, or its new version has no new chunk)."""
        with self._cond:
            self._waiting.pop(path, None)
            self._stamp.pop(path, None)
            self._not_before.pop(path, None)

    def files(self) -> int:
        """Files waiting or in flight."""
        with self._cond:
            return len(self._waiting) + len(self._busy - self._waiting.keys())

    def busy(self) -> bool:
        with self._cond:
            return bool(self._waiting or self._busy)
