"""Reading one file: extract its text and cut it into chunks, within the configured caps.

`read_file` needs nothing but the path, the caps and a token counter: no manifest, no store. So it
runs in the daemon (a live save) or in a reader process (`semdexd.index.readers`, a large
reindex) alike, and what it returns crosses a pipe as it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from semdexd.chunk import Chunk, cap_chunks, chunk_budget_chars, chunk_text
from semdexd.chunk.units import CountTokens
from semdexd.config import Config
from semdexd.extract import extract
from semdexd.extract.result import cap_text
from semdexd.kinds import Kind


@dataclass(frozen=True)
class ReadLimits:
    """The caps and chunk sizes a file is read with (from the config and the model)."""

    max_bytes: int
    max_chars: int
    max_chunks: int
    target_tokens: int
    overlap_tokens: int
    max_tokens: int

    @classmethod
    def of(cls, cfg: Config, max_tokens: int) -> ReadLimits:
        return cls(max_bytes=int(cfg.index.max_file_mb * 1024 * 1024),
                   max_chars=int(cfg.index.max_text_mb * 1024 * 1024),
                   max_chunks=cfg.index.max_chunks_per_file, target_tokens=cfg.chunk.target_tokens,
                   overlap_tokens=cfg.chunk.overlap_tokens, max_tokens=max_tokens)


@dataclass(frozen=True)
class Reading:
    """What reading a file gave: its chunks, or the kind and reason it has none.

    ``kind`` is ``INDEXED`` or ``TRUNCATED`` (``reason`` says what was cut) with ``chunks``, or a
    skip/failure with its reason. ``unchanged``: its bytes hash to the ``unless_hash`` it was
    read with, so it was not chunked (``chunks`` is empty). ``again``: a failure of the reading
    (an error raised), not of the file: it is recorded so that the next scan reads it again."""

    kind: Kind
    reason: str = ""
    content_hash: str = ""
    file_type: str = ""
    chunks: tuple[Chunk, ...] = ()
    unchanged: bool = False
    again: bool = False
    extract_s: float = 0.0
    chunk_s: float = 0.0

    @property
    def has_text(self) -> bool:
        return self.kind.has_text


def read_error(exc: Exception) -> Reading:
    """The `Reading` of a file whose reading raised ``exc``."""
    return Reading(Kind.FAILED, f"failed: {type(exc).__name__}: {exc}", again=True)


def read_file(path: Path, limits: ReadLimits, count_tokens: CountTokens, unless_hash: str = "") -> Reading:
    """Extract and chunk ``path``; a file whose content hashes to ``unless_hash`` is only hashed.
    Never raises for a bad file (its reason is in the result)."""
    t0 = time.perf_counter()
    ex = extract(path, max_bytes=limits.max_bytes, max_chars=limits.max_chars)
    t1 = time.perf_counter()
    if not ex.has_text or (unless_hash and ex.content_hash == unless_hash):
        return Reading(ex.kind, ex.reason, ex.content_hash, ex.file_type, unchanged=ex.has_text,
                       extract_s=t1 - t0)
    text = cap_text(ex.text, chunk_budget_chars(limits.max_chunks, limits.target_tokens))
    chunks = chunk_text(text.text, file_type=ex.file_type, count_tokens=count_tokens,
                        target_tokens=limits.target_tokens, max_tokens=limits.max_tokens,
                        overlap_tokens=limits.overlap_tokens)
    chunks, reason = cap_chunks(chunks, limits.max_chunks, ex.reason, cut=bool(text.reason))
    kind = Kind.TRUNCATED if reason else Kind.INDEXED
    return Reading(kind, reason, ex.content_hash, ex.file_type, tuple(chunks),
                   extract_s=t1 - t0, chunk_s=time.perf_counter() - t1)
