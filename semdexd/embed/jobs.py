"""Units of work between `EmbedPool.embed` callers and the broker thread.

A `Job` is the set of texts one ``embed`` call needs from the workers; it is cut into `Batch`es.
The broker delivers each position of a job exactly once (a vector or an `EmbedFailure`); the
caller waits on ``job.done``. Delivery after `Job.cancel` (caller timed out) is ignored.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class EmbedFailure:
    """Why one text got no vector (e.g. "failed: text crashed the model worker twice").

    ``transient``: the pool's state caused it (closed, workers cannot start, no answer in time),
    not the text, so the same text may well be embedded later; otherwise the text itself failed
    (crashed or hung a worker twice, refused by the model, not a string).
    """

    reason: str
    transient: bool = False


Result = np.ndarray | EmbedFailure


class Embedder(Protocol):
    """What embeds texts for the indexer and the searcher: the pool, or the previous index's
    in-process `QueryEncoder`. One result per text, in input order."""

    def embed(self, texts: Sequence[str], *, kind: Literal["passage", "query"] = "passage",
              priority: bool = False, timeout: float | None = None) -> list[Result]: ...


class Job:
    """Results of ``size`` texts, filled by the broker, awaited by one caller."""

    def __init__(self, size: int) -> None:
        self.results: list[Result | None] = [None] * size
        self.remaining = size
        self.done = threading.Event()
        self.cancelled = False
        self._lock = threading.Lock()
        if size == 0:
            self.done.set()

    def deliver(self, positions: Sequence[int], values: Sequence[Result]) -> None:
        """Fill ``positions`` (first delivery wins; later ones for the same position are ignored)."""
        with self._lock:
            if self.cancelled:
                return
            for position, value in zip(positions, values):
                if self.results[position] is None:
                    self.results[position] = value
                    self.remaining -= 1
            if self.remaining == 0:
                self.done.set()

    def fail(self, positions: Sequence[int], reason: str, transient: bool = False) -> None:
        self.deliver(positions, [EmbedFailure(reason, transient)] * len(positions))

    def cancel(self) -> list[Result | None]:
        """Stop accepting deliveries; returns the results as they are now."""
        with self._lock:
            self.cancelled = True
            return list(self.results)


_batch_ids = itertools.count(1)


@dataclass(eq=False)
class Batch:
    """Texts of one job sent to one worker together (``positions`` index into the job)."""

    job: Job
    positions: list[int]
    texts: list[str]
    priority: bool = False
    crashes: int = 0            # worker deaths while this batch (or its parent) was in flight
    id: int = field(default_factory=lambda: next(_batch_ids))

    @property
    def size(self) -> int:
        return len(self.texts)

    def split(self) -> tuple[Batch, Batch]:
        """Two halves with fresh ids; they inherit the crash count (the poison is in one of them)."""
        half = len(self.texts) // 2
        return (Batch(self.job, self.positions[:half], self.texts[:half], self.priority, self.crashes),
                Batch(self.job, self.positions[half:], self.texts[half:], self.priority, self.crashes))
