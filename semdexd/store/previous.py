"""The previous index, served while a rebuild (a model or chunker change) catches up.

A changed model or chunker gets a new index (its own manifest folder and collection) built
beside the old one. Until the new one has indexed everything once, searches are answered from
the newest *complete* previous index: same manifest/store code, opened read-mostly. Its queries
must be embedded by the model that built it: the running pool when the model is unchanged (only
the chunker changed), else that model's converted encoder loaded in this process for queries only
(one more model in memory: +49 MB RSS for MiniLM-L6 int8, +110 MB float32, measured; only during
the rebuild; when the old model's files are gone, the previous index is not served).

Each manifest records ``model_info`` (JSON) when opened and ``complete = 1`` once its initial
index is done; an index without those (built by an older semdexd) is never served as previous.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from semdexd.config import Config
from semdexd.embed.model import ModelInfo

log = structlog.get_logger()

META_MODEL = "model_info"
META_COMPLETE = "complete"


class QueryEncoder:
    """The previous model, in process, for queries only (the `Embedder` protocol; thread-safe)."""

    def __init__(self, info: ModelInfo) -> None:
        from semdexd.embed.encoder import Encoder

        self.info = info
        self._encoder = Encoder(info, threads=1)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, kind: str = "query", priority: bool = False,
              timeout: float | None = None) -> list[Any]:
        from semdexd.embed.text import clean

        prefix = self.info.query_prefix if kind == "query" else self.info.passage_prefix
        with self._lock:
            encoded = self._encoder.encode([clean(prefix + t) for t in texts])
        return [np.asarray(v, dtype=np.float32) for v in encoded.vectors]


@dataclass
class PreviousIndex:
    key: str
    manifest: Any
    store: Any
    embedder: Any
    model_id: str

    def close(self) -> None:
        try:
            self.manifest.close()
        except Exception:  # noqa: BLE001 - closing a read-mostly manifest must not fail the swap
            log.warning("previous_index_close_failed", index=self.key)


def record_model(manifest: Any, info: ModelInfo) -> None:
    """Remember which model builds this index (so that it can be served as 'previous' later)."""
    if manifest.get_meta(META_MODEL) is None:
        manifest.set_meta(META_MODEL, json.dumps(info.to_dict()))


def find_previous(cfg: Config, current_key: str, info: ModelInfo, pool: Any) -> PreviousIndex | None:
    """The newest complete index other than ``current_key`` that can be queried, opened; or None."""
    from semdexd.store.manifest import Manifest
    from semdexd.store.vectors import VectorStore

    root = cfg.paths.data_dir / "index"
    candidates = [p for p in root.iterdir() if p.name != current_key and (p / "manifest.sqlite3").is_file()] \
        if root.is_dir() else []
    for folder in sorted(candidates, key=lambda p: (p / "manifest.sqlite3").stat().st_mtime, reverse=True):
        manifest = None
        try:
            manifest = Manifest(folder / "manifest.sqlite3")
            old = _usable_model(manifest)
            if old is None:
                manifest.close()
                continue
            embedder = pool if old.model_id == info.model_id else QueryEncoder(old)
            store = VectorStore(cfg, f"{cfg.store.collection}-{folder.name}")
        except Exception as exc:  # noqa: BLE001 - an unusable previous index is simply not served
            log.warning("previous_index_unusable", index=folder.name, error=f"{type(exc).__name__}: {exc}")
            if manifest is not None:
                manifest.close()
            continue
        log.info("serving_previous_index", index=folder.name, model=old.model_id, building=current_key)
        return PreviousIndex(folder.name, manifest, store, embedder, old.model_id)
    return None


def _usable_model(manifest: Any) -> ModelInfo | None:
    if manifest.get_meta(META_COMPLETE) != "1":
        return None
    raw = manifest.get_meta(META_MODEL)
    if raw is None:
        return None
    info = ModelInfo.from_dict(json.loads(raw))
    if not Path(info.ct2_dir).is_dir() or not Path(info.tokenizer_file).is_file():
        return None
    return info
