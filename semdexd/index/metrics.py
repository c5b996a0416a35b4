"""Stage timings and counters for status, benchmarks and ``PROFILE=true`` (thread-safe)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STAGES = ("scan", "extract", "chunk", "embed", "write")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = defaultdict(float)
        self._calls: dict[str, int] = defaultdict(int)
        self._counters: dict[str, int] = defaultdict(int)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._seconds[stage] += seconds
            self._calls[stage] += 1

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        """{"stages": {name: {"s", "calls", "share_pct"}}, "counters": {...}} (JSON-able)."""
        with self._lock:
            total = sum(self._seconds.values()) or 1.0
            stages = {s: {"s": round(self._seconds[s], 3), "calls": self._calls[s],
                          "share_pct": round(100 * self._seconds[s] / total, 1)} for s in STAGES}
            return {"stages": stages, "counters": dict(self._counters)}
