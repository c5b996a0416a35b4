"""The vector store: Chroma behind a small interface (ids, vectors, small metadata; no documents).

The daemon is the only process that opens the store. `PersistentClient` by default, `HttpClient`
against a `chroma run` server with ``[store] backend = "http"``: same code. Telemetry is off and no
embedding function is ever attached (on create *and* on get), so nothing reaches for the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import structlog

from semdexd.config import Config
from semdexd.system.private import private_dir

log = structlog.get_logger()


@dataclass(frozen=True)
class Neighbour:
    id: str
    score: float  # cosine similarity, higher is better


def ancestors(path: str) -> list[str]:
    """Every folder above ``path`` ('/a/b/c.txt' -> ['/a', '/a/b']), for prefix filters via $contains."""
    parents = [str(p) for p in PurePosixPath(path).parents if str(p) != "/"]
    return parents[::-1]


def chunk_metadata(path: str, file_type: str) -> dict[str, Any]:
    return {"path": path, "dirs": ancestors(path) or ["/"], "type": file_type or "none"}


class VectorStore:
    def __init__(self, cfg: Config, name: str) -> None:
        """Open (or create) collection ``name``; ``name`` encodes the model and chunker versions."""
        self._client = self._open_client(cfg)
        self.name = name
        self._col = self._client.get_or_create_collection(
            name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine", "ef_search": cfg.store.hnsw_ef_search,
                                    "max_neighbors": cfg.store.hnsw_m}},
        )
        self._apply_ef_search(cfg, name)
        self._max_batch = min(self._client.get_max_batch_size(), 4096)
        # Chroma's count() costs ~4.5 ms, on every query: cached, and dropped by each write of
        # ours (the daemon is the store's only writer). `_writes` detects a write racing a count.
        self._count: int | None = None
        self._writes = 0

    def _apply_ef_search(self, cfg: Config, name: str) -> None:
        """A changed ``hnsw_ef_search`` is written to the collection and, since Chroma applies it
        only to a freshly loaded index, the client is reopened (measured: no effect otherwise)."""
        current = (self._col.configuration or {}).get("hnsw") or {}
        if current.get("ef_search", cfg.store.hnsw_ef_search) == cfg.store.hnsw_ef_search:
            return
        self._col.modify(configuration={"hnsw": {"ef_search": cfg.store.hnsw_ef_search}})
        if cfg.store.backend != "http":
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient.clear_system_cache()
            self._client = self._open_client(cfg)
        self._col = self._client.get_collection(name, embedding_function=None)

    @staticmethod
    def _open_client(cfg: Config) -> Any:
        from semdexd.system.lean import import_chromadb

        chromadb = import_chromadb()  # without the parts the daemon never runs (see semdexd.system.lean)
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if cfg.store.backend == "http":
            return chromadb.HttpClient(host=cfg.store.host, port=cfg.store.port, settings=settings)
        private_dir(cfg.paths.chroma_dir)  # its files follow the umask (0o077 under semdexd run/start)
        try:
            return chromadb.PersistentClient(path=str(cfg.paths.chroma_dir), settings=settings)
        except Exception:
            # Chroma caches its system per path, half-built after a failed open (a full disk):
            # forget it so that the next attempt really opens again.
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient.clear_system_cache()
            raise

    def drop_collection(self, name: str) -> None:
        if name != self.name:
            self._client.delete_collection(name)

    def count(self) -> int:
        """How many vectors the collection holds (cached between our writes)."""
        cached = self._count
        if cached is not None:
            return cached
        writes = self._writes
        total = int(self._col.count())
        if writes == self._writes:
            self._count = total
        return total

    def _wrote(self) -> None:
        self._writes += 1
        self._count = None

    def add(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]) -> None:
        """Add new ids (never rewrites existing ones: callers add only what is missing)."""
        for start in range(0, len(ids), self._max_batch):
            end = start + self._max_batch
            try:
                self._col.add(ids=list(ids[start:end]), embeddings=vectors[start:end],
                              metadatas=list(metadatas[start:end]))
            finally:
                self._wrote()

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), self._max_batch):
            try:
                self._col.delete(ids=list(ids[start:start + self._max_batch]))
            finally:
                self._wrote()

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the store holds."""
        found: set[str] = set()
        for start in range(0, len(ids), self._max_batch):
            found.update(self._col.get(ids=list(ids[start:start + self._max_batch]), include=[])["ids"])
        return found

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        offset, page = 0, 10000
        while True:
            got = self._col.get(include=[], limit=page, offset=offset)["ids"]
            out.update(got)
            if len(got) < page:
                return out
            offset += page

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of ``ids`` ({} while the store cannot be read: see `query`)."""
        if not ids:
            return {}
        try:
            got = self._embeddings(list(ids))
        except Exception as exc:
            if not _unavailable(exc):
                raise
            log.warning("store_read_failed", op="get", error=f"{type(exc).__name__}: {exc}")
            return {}
        if not got["ids"]:
            return {}
        matrix = np.asarray(got["embeddings"], dtype=np.float32)
        return dict(zip(got["ids"], matrix))

    def _embeddings(self, ids: list[str]) -> Any:
        """``Collection.get(ids, include=["embeddings"])`` minus its argument validation and its
        per-vector conversions (``ids`` are ours; they cost a third of the call for a search's
        lexical-only candidates). The client's ``_get`` is what ``Collection.get`` calls
        (chromadb is pinned to one version)."""
        col = self._col
        return col._client._get(collection_id=col.id, ids=ids, include=["embeddings"],
                                tenant=col.tenant, database=col.database)

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None,
              ids: Sequence[str] | None = None) -> list[Neighbour]:
        """Nearest ``k`` chunks to ``vector``, optionally restricted by metadata or candidate ids."""
        try:
            total = self.count()
        except Exception as exc:
            if not _unavailable(exc):
                raise
            log.warning("store_read_failed", op="count", error=f"{type(exc).__name__}: {exc}")
            return []
        if total == 0 or k <= 0:
            return []
        kwargs: dict[str, Any] = {"query_embeddings": np.asarray([vector], dtype=np.float32),
                                  "n_results": min(k, total), "include": ["distances"]}
        if where:
            kwargs["where"] = where
        if ids is not None:
            if not ids:
                return []
            kwargs["ids"] = list(ids)
        try:
            res = self._col.query(**kwargs)
        except Exception as exc:
            # A full disk can make Chroma's reads fail too (it applies its log to the HNSW index
            # before a read): searches go on with the lexical list; status says degraded.
            if not _unavailable(exc):
                raise
            log.warning("store_read_failed", op="query", error=f"{type(exc).__name__}: {exc}")
            return []
        got = [Neighbour(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0])]
        return sorted(got, key=lambda n: (-n.score, n.id))  # ties: by chunk id, not insertion order


def nearest(vector: np.ndarray, vectors: Mapping[str, np.ndarray], k: int) -> list[Neighbour]:
    """The ``k`` of ``vectors`` nearest to ``vector`` by exact dot products (unit vectors); ties by id."""
    if not vectors:
        return []
    keys = list(vectors)
    scores = np.stack([vectors[i] for i in keys]) @ np.asarray(vector, dtype=np.float32)
    top = np.lexsort((np.asarray(keys), -scores))[:k]
    return [Neighbour(keys[i], float(scores[i])) for i in top]


def _unavailable(exc: BaseException) -> bool:
    from semdexd.index.health import store_unavailable

    return store_unavailable(exc)
