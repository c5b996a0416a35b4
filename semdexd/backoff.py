"""Exponential back-off, the one rule every retry in semdex follows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Attempt 1 waits ``first_s``, each later one twice as long as the one before, never more
    than ``max_s``."""

    first_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based; lower counts as 1)."""
        return float(min(self.max_s, self.first_s * 2.0 ** max(0, attempt - 1)))
