"""`EmbedPool`: the daemon's one door to embeddings (cache, length-aware batching, worker pool).

``embed`` is thread-safe and blocking; many threads (indexer, socket server threads) call it at
once. Per call: texts get the model's prefix for their ``kind``, identical texts are embedded
once, cache hits are answered from the persistent `EmbedCache`, the misses are sorted by token
length and cut into batches of ``cfg.pool.batch_size`` texts, and the batches go to the `Broker`
(priority lane for ``priority=True``). A priority call of at most `query.MAX_TEXTS` texts (a
search's query) is embedded by the daemon's own `QueryEncoder` instead, so it never waits behind
bulk batches (``[pool] query_encoder``). Results come back in input order: a float32 vector (unit
length when the model normalises) or an `EmbedFailure` with a reason. A text's vector is the same
whichever texts it is embedded with (`Encoder` never pads). A call waits at most ``timeout`` (by
default ``[pool] embed_timeout_s``).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from semdexd.config import Config
from semdexd.embed.broker import Broker
from semdexd.embed.cache import EmbedCache
from semdexd.embed.errors import PoolClosedError
from semdexd.embed.jobs import Batch, EmbedFailure, Job, Result
from semdexd.embed.model import ModelInfo, load_tokenizer
from semdexd.embed.query import MAX_TEXTS as QUERY_MAX_TEXTS
from semdexd.embed.query import QueryEncoder
from semdexd.embed.text import cache_key, clean
from semdexd.embed.tokens import TokenCounter

__all__ = ["EmbedFailure", "EmbedPool", "PoolClosedError"]

MAX_IPC_PATH = 100          # sockaddr_un.sun_path is 104-108 bytes depending on the OS
CHARS_PER_TOKEN_CAP = 16    # for sorting, only the first max_tokens * 16 characters are tokenized


def prepare_runtime_dir(path: Path) -> None:
    """Create ``path`` with mode 0700 (and tighten it if it exists); drop stale worker endpoints."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    for stale in path.glob("embed-*.ipc"):
        match = re.match(r"embed-(\d+)", stale.name)
        if match and not _pid_alive(int(match.group(1))):
            stale.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbedPool:
    """Embedding with a pool of worker processes. `start` before use, `close` after."""

    def __init__(self, cfg: Config, info: ModelInfo) -> None:
        self.cfg = cfg
        self.info = info
        self._broker: Broker | None = None
        self._cache: EmbedCache | None = None
        self._tokenizer: Any = None
        self._queries: QueryEncoder | None = None
        self.endpoint = ""

    def start(self) -> None:
        """Bind the broker's ipc endpoint (0700 runtime dir), start the workers, open the cache.
        ValueError for an unusable runtime dir or remote endpoint configuration."""
        runtime = self.cfg.paths.runtime_dir
        prepare_runtime_dir(runtime)
        path = runtime / f"embed-{os.getpid()}-{secrets.token_hex(3)}.ipc"
        if len(str(path)) > MAX_IPC_PATH:
            raise ValueError(f"runtime dir path too long for a Unix socket ({len(str(path))} > {MAX_IPC_PATH} "
                             f"bytes): {runtime}")
        self.endpoint = f"ipc://{path}"
        self._tokenizer = load_tokenizer(self.info.tokenizer_file, None)  # shared: see token_counter
        if self.cfg.pool.query_encoder:
            self._queries = QueryEncoder(self.info, self._tokenizer)  # one tokenizer for both
        broker = Broker(self.cfg, self.info, self.endpoint)
        broker.start()  # ValueError for a bad remote endpoint configuration
        if self.cfg.pool.cache_mb > 0:
            self._cache = EmbedCache(self.cfg.paths.cache_file, self.cfg.pool.cache_mb, self.info.dim)
        self._broker = broker
        if self._queries is not None:
            self._queries.load()

    def token_counter(self) -> TokenCounter:
        """A `TokenCounter` that shares this pool's tokenizer (after `start`; saves ~7 MB)."""
        return TokenCounter(self.info, self._tokenizer)

    def close(self) -> None:
        """Stop the workers (no orphans), fail pending calls ("pool closed"), close the cache."""
        if self._broker is not None:
            self._broker.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._queries = None

    def embed(self, texts: Sequence[str], *, kind: Literal["passage", "query"] = "passage",
              priority: bool = False, timeout: float | None = None) -> list[np.ndarray | EmbedFailure]:
        """Vectors for ``texts`` in input order; an `EmbedFailure` for a text that cannot be embedded
        (not a string, crashed the model, pool closed, or no answer within ``timeout`` seconds,
        default ``[pool] embed_timeout_s``: a call never waits for good). A priority call of a few
        texts is embedded by the daemon's own query encoder (never behind bulk batches).
        Raises `PoolClosedError` if the pool is not running, ValueError for an unknown ``kind``."""
        if kind not in ("passage", "query"):
            raise ValueError(f"kind must be 'passage' or 'query', not {kind!r}")
        broker = self._broker
        if broker is None or not broker.alive:
            raise PoolClosedError("the embedding pool is not running")
        prefix = self.info.query_prefix if kind == "query" else self.info.passage_prefix
        results: list[Result | None] = [None] * len(texts)
        wanted: dict[bytes, list[int]] = {}
        full: dict[bytes, str] = {}
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                results[i] = EmbedFailure(f"failed: expected a string, got {type(text).__name__}")
                continue
            embedded = clean(prefix + text)
            key = cache_key(self.info.model_id, embedded)
            wanted.setdefault(key, []).append(i)
            full[key] = embedded
        cache = self._cache
        found = cache.get_many(list(wanted)) if cache is not None else {}
        misses = [key for key in wanted if key not in found]
        computed = self._compute(broker, [full[k] for k in misses], priority, timeout)
        if cache is not None:
            cache.put_many((k, v) for k, v in zip(misses, computed) if isinstance(v, np.ndarray))
        for key, value in [*found.items(), *zip(misses, computed)]:
            for n, i in enumerate(wanted[key]):
                results[i] = value.copy() if n and isinstance(value, np.ndarray) else value
        return [r if r is not None else EmbedFailure("failed: internal error", transient=True) for r in results]

    def _lengths(self, texts: list[str]) -> list[int]:
        cap = self.info.max_tokens * CHARS_PER_TOKEN_CAP
        return [min(len(e.ids), self.info.max_tokens) for e in self._tokenizer.encode_batch_fast([t[:cap] for t in texts])]

    def _compute(self, broker: Broker, texts: list[str], priority: bool, timeout: float | None) -> list[Result]:
        """Embed ``texts`` (prefixed, clean) on the workers, length-sorted into batches."""
        if not texts:
            return []
        queries = self._queries
        if priority and queries is not None and len(texts) <= QUERY_MAX_TEXTS:
            return self._compute_here(queries, texts)
        if timeout is None:
            timeout = self.cfg.pool.embed_timeout_s
        job = Job(len(texts))
        lengths = self._lengths(texts)
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        size = self.cfg.pool.batch_size
        batches = [Batch(job, order[i:i + size], [texts[j] for j in order[i:i + size]], priority)
                   for i in range(0, len(order), size)]
        try:
            broker.submit(batches)
        except RuntimeError:
            raise PoolClosedError("the embedding pool is closing") from None
        if job.done.wait(timeout):
            return job.results  # type: ignore[return-value]
        broker.cancel(job)
        late = EmbedFailure(f"failed: timed out after {timeout:g}s waiting for the embedding workers (stalled or "
                            f"overloaded; [pool] embed_timeout_s)", transient=True)
        return [late if r is None else r for r in job.cancel()]

    @staticmethod
    def _compute_here(queries: QueryEncoder, texts: list[str]) -> list[Result]:
        """Embed a few texts with the in-daemon query encoder (one at a time)."""
        try:
            vectors = queries.encode(texts)
        except Exception as exc:  # noqa: BLE001 -- the model or tokenizer refused: say so per text
            return [EmbedFailure(f"failed: {type(exc).__name__}: {exc}")] * len(texts)
        return list(vectors)

    def stats(self) -> dict[str, Any]:
        """JSON-able: workers [{pid, state, rss_mb, texts, restarts}], queued, in_flight, cache {hits,
        misses, entries, mb}, texts, tokens (real), padded_tokens (computed, padding included),
        padding_ratio (padded_tokens / tokens, >= 1),
        restarts, the broker's other counters (crashes, retired, requeued, splits, failed, deadlines:
        batches past their deadline, parks/unparks: times the workers were stopped for idleness and
        started again), and parked (True while the workers are stopped for idleness)."""
        snap = self._broker.snapshot() if self._broker is not None else {}
        tokens, padded = snap.get("tokens", 0), snap.get("padded", 0)
        cache = self._cache.stats() if self._cache is not None else {"hits": 0, "misses": 0, "entries": 0, "mb": 0.0}
        return {
            "workers": snap.get("workers", []), "queued": snap.get("queued", 0), "in_flight": snap.get("in_flight", 0),
            "cache": cache, "texts": snap.get("texts", 0), "tokens": tokens, "padded_tokens": padded,
            "padding_ratio": round(padded / tokens, 3) if tokens else 1.0, "restarts": snap.get("restarts", 0),
            **{k: snap.get(k, 0) for k in ("crashes", "retired", "requeued", "splits", "failed", "queued_batches",
                                           "batches", "deadlines", "parks", "unparks")},
            "parked": bool(snap.get("parked", False)),
            "model_id": self.info.model_id,
        }
