"""The vector copies an older index lacks: an index built before the manifest kept a float16 copy
of each chunk's vector (`semdexd.store.copies`) gets them from the store, once, after its initial
index has caught up."""

from __future__ import annotations

import threading
import time

import structlog

from semdexd.store.manifest import Manifest
from semdexd.store.vectors import VectorStore

log = structlog.get_logger()


def keep_vectors(manifest: Manifest, store: VectorStore, stopping: threading.Event, page: int = 200) -> int:
    """Copy from the store into the manifest the vectors of chunks written before the manifest
    kept them (an index built by an older version), a page at a time; returns how many. Stops
    when ``stopping`` is set, and at the first error (logged: the next start goes on from there)."""
    after, kept, start = 0, 0, time.monotonic()
    try:
        while not stopping.is_set():
            rows = manifest.copies.missing(after, page)
            if not rows:
                break
            after = rows[-1][0]
            vectors = store.vectors([cid for _, cid in rows])
            manifest.copies.keep(vectors)
            kept += len(vectors)
    except Exception as exc:
        log.warning("vectors_not_kept", error=f"{type(exc).__name__}: {exc}", kept=kept)
    if kept:
        log.info("vectors_kept", chunks=kept, s=round(time.monotonic() - start, 1))
    return kept
