"""What became of a file: an explicit kind per manifest row, not a prefix of its reason string.

The manifest keeps the coarse ``status`` (indexed | skipped | failed, what `status` counts) and
the ``kind`` below, which decides what happens next:

- ``INDEXED`` / ``TRUNCATED`` / ``PARTIAL``: searchable (TRUNCATED: only up to a cap; PARTIAL:
  some chunks could never be embedded). Redone when the file changes.
- ``SKIPPED`` (binary, too big, empty, a zip bomb, ...) and ``FAILED`` (damaged, encrypted,
  unreadable): permanent for this content; redone when the file changes, or when the extractor
  that decided it is older than the running one (`semdexd.extract.EXTRACTOR_VERSION`).
- ``POISON``: the daemon died while reading it (twice); never retried by itself, only when the
  file changes or on ``semdex reindex PATH``.

Transient failures (`EmbedFailure.transient`: the embedding pool closed, cannot start, no answer
in time) are never recorded: the file keeps its previous row and is retried with back-off (see
`Indexer`).
"""

from __future__ import annotations

from enum import StrEnum

from semdexd.backoff import Backoff


class Kind(StrEnum):
    INDEXED = "indexed"
    TRUNCATED = "truncated"
    PARTIAL = "partial"
    SKIPPED = "skipped"
    FAILED = "failed"
    POISON = "poison"

    @property
    def status(self) -> str:
        """The coarse status column: indexed | skipped | failed."""
        if self in (Kind.INDEXED, Kind.TRUNCATED, Kind.PARTIAL):
            return "indexed"
        return "skipped" if self is Kind.SKIPPED else "failed"


TRANSIENT_RETRY = Backoff(first_s=5.0, max_s=600.0)  # transient failures: 5 s, 10 s, 20 s, ... 10 min


def retry_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based) of a transient failure."""
    return TRANSIENT_RETRY.delay(attempt)
