"""The previous index, served while a rebuild (a model or chunker change) catches up.

A changed model or chunker gets a new index (its own manifest folder and collection) built
beside the old one. Until the new one has indexed everything once, searches are answered from
the newest *complete* previous index: same manifest/store code, opened read-mostly. Its queries
must be embedded by the model that built it: the running pool when the model is unchanged (only
the chunker changed), else that model's converted encoder loaded in this process for queries only
(one more model in memory, only during the rebuild; when the old model's files are gone, the
previous index is not served).

Each manifest records ``model_info`` (JSON) when opened and ``complete = 1`` once its initial
index is done; an index without those (built by an older semdexd) is never served as previous.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import structlog

from semdexd.config import Config
from semdexd.embed.jobs import Embedder
from semdexd.embed.model import ModelInfo
from semdexd.store.layout import Layout
from semdexd.store.manifest import Manifest
from semdexd.store.vectors import VectorStore

log = structlog.get_logger()

META_MODEL = "model_info"
META_COMPLETE = "complete"


@dataclass
class PreviousIndex:
    """A complete older index, open for searches: its manifest, store and the model that embeds
    its queries."""

    key: str
    manifest: Manifest
    store: VectorStore
    embedder: Embedder
    model: ModelInfo

    def close(self) -> None:
        try:
            self.manifest.close()
        except Exception:  # noqa: BLE001 - closing a read-mostly manifest must not fail the swap
            log.warning("previous_index_close_failed", index=self.key)


def record_model(manifest: Manifest, info: ModelInfo) -> None:
    """Remember which model builds this index (so that it can be served as 'previous' later)."""
    if manifest.get_meta(META_MODEL) is None:
        manifest.set_meta(META_MODEL, json.dumps(info.to_dict()))


def find_previous(cfg: Config, current_key: str, info: ModelInfo, pool: Embedder) -> PreviousIndex | None:
    """The newest complete index other than ``current_key`` that can be queried, opened; or None."""
    from semdexd.embed.query import QueryEncoder

    layout = Layout.of(cfg)
    for key in layout.keys():
        if key == current_key or not layout.has_manifest(key):
            continue
        manifest = None
        try:
            manifest = Manifest(layout.manifest(key))
            old = _usable_model(manifest)
            if old is None:
                manifest.close()
                continue
            embedder = pool if old.model_id == info.model_id else QueryEncoder(old)
            store = VectorStore(cfg, layout.collection_of(key))
        except Exception as exc:  # noqa: BLE001 - an unusable previous index is simply not served
            log.warning("previous_index_unusable", index=key, error=f"{type(exc).__name__}: {exc}")
            if manifest is not None:
                manifest.close()
            continue
        log.info("serving_previous_index", index=key, model=old.model_id, building=current_key)
        return PreviousIndex(key, manifest, store, embedder, old)
    return None


def _usable_model(manifest: Manifest) -> ModelInfo | None:
    if manifest.get_meta(META_COMPLETE) != "1":
        return None
    raw = manifest.get_meta(META_MODEL)
    if raw is None:
        return None
    info = ModelInfo.from_dict(json.loads(raw))
    if not Path(info.ct2_dir).is_dir() or not Path(info.tokenizer_file).is_file():
        return None
    return info
