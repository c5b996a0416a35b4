"""`QueryEncoder`: the daemon's own one-thread encoder for queries, so that a search never waits
behind bulk batches on the workers (which also run at a lower CPU priority). It also serves the
previous index's queries during a rebuild for another model (`embed`: the `Embedder` protocol).

Thread-safe: callers take turns (a query costs a few milliseconds). The model loads on first use,
or up front with `load`. Vectors are those the workers compute for the same text (same model
files, same compute type; see `Encoder`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

import numpy as np
from tokenizers import Tokenizer

from semdexd.embed.jobs import EmbedFailure, Result
from semdexd.embed.model import ModelInfo
from semdexd.embed.text import clean

MAX_TEXTS = 8   # larger priority calls go to the workers' priority lane


class QueryEncoder:
    """A lazily loaded in-process `Encoder` with one intra-op thread."""

    def __init__(self, info: ModelInfo, tokenizer: Tokenizer | None = None) -> None:
        self.info = info
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self._encoder: object | None = None

    def load(self) -> None:
        """Load the model now and check its output (idempotent); `ModelError` if it is wrong here."""
        with self._lock:
            self._load()

    def _load(self) -> object:
        if self._encoder is None:
            from semdexd.embed.encoder import Encoder, check_output

            encoder = Encoder(self.info, threads=1, tokenizer=self._tokenizer)
            check_output(encoder)  # ModelError: vectors would be wrong here
            self._encoder = encoder
        return self._encoder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors [n, dim] of ``texts`` (prefixed and clean), one text at a time: a text's vector
        never depends on what else was asked. Raises what the model raises."""
        from semdexd.embed.encoder import Encoder

        with self._lock:
            encoder = self._load()
            assert isinstance(encoder, Encoder)
            return np.vstack([encoder.encode([t]).vectors for t in texts]) if texts else \
                np.zeros((0, self.info.dim), np.float32)

    def embed(self, texts: Sequence[str], *, kind: Literal["passage", "query"] = "passage",
              priority: bool = False, timeout: float | None = None) -> list[Result]:
        """The `Embedder` protocol in process: each text prefixed for ``kind`` and cleaned, as the
        pool would; an `EmbedFailure` for every text when the model refuses (``priority`` and
        ``timeout`` are the pool's: here every call runs at once)."""
        prefix = self.info.query_prefix if kind == "query" else self.info.passage_prefix
        try:
            vectors = self.encode([clean(prefix + t) for t in texts])
        except Exception as exc:  # noqa: BLE001 -- the model or tokenizer refused: say so per text
            return [EmbedFailure(f"failed: {type(exc).__name__}: {exc}")] * len(texts)
        return list(vectors)
