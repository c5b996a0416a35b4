"""What became of a file: the one vocabulary, from extraction to the manifest to `status`.

An extraction says which kind its file is (`Extraction.kind`), the indexer records it with the
file (`FileUpdate.kind`), and the manifest derives from it the coarse ``status`` column
(indexed | skipped | failed, what `status` counts). The kind decides what happens next:

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

A reason a person reads (``"skipped: binary"``, ``"failed: PDF is encrypted"``, ``"truncated:
..."``) starts with the word of its kind; `Kind.of_reason` is the one place that reads it.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    INDEXED = "indexed"
    TRUNCATED = "truncated"
    PARTIAL = "partial"
    SKIPPED = "skipped"
    FAILED = "failed"
    POISON = "poison"

    @property
    def searchable(self) -> bool:
        """The file has chunks in the index (all of them, or some)."""
        return self in (Kind.INDEXED, Kind.TRUNCATED, Kind.PARTIAL)

    @property
    def has_text(self) -> bool:
        """Extracting (or reading) a file gave this kind with text to chunk (a file is `PARTIAL`
        only later, when some of its chunks get no vector)."""
        return self in (Kind.INDEXED, Kind.TRUNCATED)

    @property
    def status(self) -> str:
        """The coarse status column: indexed | skipped | failed."""
        if self.searchable:
            return "indexed"
        return "skipped" if self is Kind.SKIPPED else "failed"

    @classmethod
    def of_reason(cls, reason: str) -> Kind:
        """The kind an extraction's reason names by its first word (``truncated``, ``failed``;
        any other reason skips the file); no reason is a file read whole."""
        if not reason:
            return cls.INDEXED
        for kind in (cls.TRUNCATED, cls.FAILED):
            if reason.startswith(kind.value):
                return kind
        return cls.SKIPPED

    @classmethod
    def of_row(cls, kind: str, status: str) -> Kind:
        """A manifest row's kind; a row written before kinds existed has only its status."""
        return cls(kind) if kind else cls(status) if status in ("indexed", "skipped") else cls.FAILED
