"""Scheduling: which batch goes next, and what becomes of a batch that came back without vectors.

Two lanes: priority (queries) before bulk. A batch that comes back (its worker died, fell silent,
passed its deadline, restarted while holding it) goes to the FRONT of its lane. A batch lost to
two worker losses is split in halves (which inherit the count), so a poison text ends alone and
then fails with a reason; a batch that raised in the worker is split at once; a single text that
raised fails with the worker's message. Knows nothing of processes or sockets.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import structlog

from semdexd.embed.jobs import Batch, Job

CRASHES_BEFORE_SPLIT = 2


class Scheduler:
    """The queues of one pool; used by the broker thread only."""

    def __init__(self, counters: collections.Counter[str], before_failing: Callable[[], None] = lambda: None) -> None:
        """``before_failing`` runs before a job is told of a failure (the broker publishes its
        stats then, so that a caller woken by the failure sees them)."""
        self.counters = counters
        self._before_failing = before_failing
        self.log = structlog.get_logger()
        self._lanes: dict[bool, collections.deque[Batch]] = {True: collections.deque(), False: collections.deque()}

    def submit(self, batches: list[Batch]) -> None:
        """Queue new batches at the back of their lane."""
        for batch in batches:
            self._lanes[batch.priority].append(batch)
        self.counters["batches"] += len(batches)

    def cancel(self, job: Job) -> None:
        """Drop the queued batches of ``job``."""
        for lane, queue in self._lanes.items():
            self._lanes[lane] = collections.deque(b for b in queue if b.job is not job)

    def pending(self) -> bool:
        return bool(self._lanes[True] or self._lanes[False])

    def next_batch(self) -> Batch | None:
        """The next batch to send (priority lane first), skipping cancelled jobs; None when empty."""
        for lane in (True, False):
            queue = self._lanes[lane]
            while queue:
                batch = queue.popleft()
                if not batch.job.cancelled:
                    return batch
        return None

    def put_back(self, batch: Batch) -> None:
        """A batch taken by `next_batch` that could not be sent: front of its lane, no penalty."""
        self._lanes[batch.priority].appendleft(batch)

    def requeue(self, batch: Batch) -> None:
        """The worker never computed it (busy, result lost): front of its lane."""
        self.counters["requeued"] += 1
        self._lanes[batch.priority].appendleft(batch)

    def lost(self, batch: Batch, reason: str) -> None:
        """The worker holding ``batch`` was lost (died, silent, past the deadline): redo, split or fail."""
        batch.crashes += 1
        if batch.crashes < CRASHES_BEFORE_SPLIT:
            self.requeue(batch)
        elif batch.size == 1:
            self.counters["failed"] += 1
            self.log.warning("embed_poison_text", chars=len(batch.texts[0]), crashes=batch.crashes, reason=reason)
            self._before_failing()
            batch.job.fail(batch.positions, f"failed: text crashed the model worker {batch.crashes} times ({reason})")
        else:
            self._split(batch)

    def refused(self, batch: Batch, reason: str) -> None:
        """The worker raised on ``batch``: split it, or fail the single text with the worker's reason."""
        if batch.size == 1:
            self.counters["failed"] += 1
            self._before_failing()
            batch.job.fail(batch.positions, f"failed: {reason}")
        else:
            self._split(batch)

    def _split(self, batch: Batch) -> None:
        first, second = batch.split()
        self.counters["splits"] += 1
        self._lanes[batch.priority].extendleft([second, first])

    def fail_all(self, reason: str) -> None:
        """Fail every queued batch with ``reason``, a transient failure (the pool's state)."""
        for queue in self._lanes.values():
            while queue:
                batch = queue.popleft()
                self.counters["failed"] += batch.size
                self._before_failing()
                batch.job.fail(batch.positions, reason, transient=True)

    def queued_texts(self) -> int:
        return sum(b.size for q in self._lanes.values() for b in q)

    def queued_batches(self) -> int:
        return sum(len(q) for q in self._lanes.values())
