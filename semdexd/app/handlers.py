"""The API handlers: each receives its typed request (semdexd.api.types) and returns the result.

`Api(service)` serves the methods of `semdexd.api.types.METHODS` except the per-connection ones
(subscribe/unsubscribe, served by the socket server with the service's event hub). `handlers()`
is the map the socket server dispatches to: method name -> callable(named params), which parses
and validates the params (ApiError ``invalid_params``) before calling the typed handler.
The service owns the life cycle; these handlers use only its facade (views: `state`, `status`,
`progress`, `ready`; actions: `pause`, `resume`, `reindex`, `serving_index`, `embed_texts`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from semdexd import PROTOCOL_VERSION, __version__
from semdexd.api.types import (
    METHODS,
    SESSION_METHODS,
    ApiError,
    EmbedRequest,
    PauseRequest,
    ReindexRequest,
    Request,
    ResumeRequest,
    SearchRequest,
    SimilarRequest,
    StatusRequest,
    VersionRequest,
    parse,
)
from semdexd.server.dispatch import Handler

if TYPE_CHECKING:
    from semdexd.app.service import Service
    from semdexd.store.filter import Filter
    from semdexd.store.manifest import Manifest

READY_WAIT_S = 120.0
READY_POLL_S = 0.1
WEAK_SHOWN = 3        # weak hits returned when none reach the cutoff


class Api:
    """The daemon's API over a `semdexd.app.service.Service`."""

    def __init__(self, service: Service) -> None:
        self.svc = service

    def handlers(self) -> dict[str, Handler]:
        """Method name -> callable(params dict) for every non-session method in METHODS."""
        return {name: self._bound(name) for name in METHODS if name not in SESSION_METHODS}

    def _bound(self, name: str) -> Handler:
        typed: Callable[[Any], Any] = getattr(self, name)

        def call(params: dict[str, Any]) -> Any:
            return typed(parse(name, params))

        call.__name__ = name
        return call

    # ------------------------------------------------------------ helpers

    def _wait_ready(self) -> None:
        """Wait for the service to open, up to READY_WAIT_S; a start that fails meanwhile ends
        the wait at once (ApiError unavailable either way)."""
        svc = self.svc
        deadline = time.monotonic() + READY_WAIT_S
        while not svc.error and not svc.ready.wait(READY_POLL_S):
            if svc.open_error:
                raise ApiError("unavailable", f"the index cannot be opened yet ({svc.open_error}); "
                               "semdexd retries by itself: see semdex status")
            if time.monotonic() > deadline:
                raise ApiError("unavailable", "the daemon is still starting (model loading); try again")
        if svc.error:
            raise ApiError("unavailable", f"the daemon could not start: {svc.error}")

    # ------------------------------------------------------------ methods

    def version(self, req: VersionRequest) -> dict[str, Any]:
        svc = self.svc
        return {"version": __version__, "protocol": PROTOCOL_VERSION, "model": svc.cfg.model.name,
                "model_id": svc.model_id()}

    def status(self, req: StatusRequest) -> dict[str, Any]:
        return self.svc.status()

    def search(self, req: SearchRequest) -> dict[str, Any]:
        """Hits at or above the cutoff; when none, ``weak`` holds the best few below it. The result
        says when files still wait to be indexed (``indexing``), how much of the index it covered
        by meaning while vectors are being computed (``coverage``), and why it is empty
        (``notice``)."""
        from semdexd.search import split_weak

        self._wait_ready()
        searcher = self.svc.serving_index()  # one index for the whole answer
        where = self._search_filter(req, searcher.manifest)
        min_score = req.min_score if req.min_score is not None else self.svc.cfg.search.min_score
        hits, weak = split_weak(searcher.search(req, where), min_score)
        out: dict[str, Any] = {"hits": hits, "min_score": min_score}
        if not hits:
            out["weak"] = [h for h in weak if h["score"] > 0][:WEAK_SHOWN]
            notice = self._empty_notice(req, where, searcher.manifest)
            if notice:
                out["notice"] = notice
        if self.svc.state() != "idle":  # the common case counts nothing
            progress = self._indexing_progress()
            if progress:
                out["indexing"] = progress
            coverage = _coverage(searcher.manifest)
            if coverage:
                out["coverage"] = coverage
        return out

    def _search_filter(self, req: SearchRequest, manifest: Manifest) -> Filter:
        """The manifest filter; relative globs are anchored at the request's paths, else at the
        client's cwd when it lies in an indexed folder, else at every indexed folder. A type no
        indexed file of ``manifest`` (the searcher's: during a rebuild, the previous index's) has
        is an error listing the known types (once the first index is done)."""
        from semdexd.search import request_filter
        from semdexd.search.globs import GlobError

        svc = self.svc
        folders = [str(f) for f in svc.cfg.index.folders]
        cwd = req.cwd
        inside = cwd is not None and any(cwd == f or cwd.startswith(f.rstrip("/") + "/") for f in folders)
        anchors = [cwd] if inside and cwd else folders
        try:
            where = request_filter(req, anchors)
        except GlobError as exc:
            raise ApiError("invalid_params", f"search: {exc}") from None
        if req.types:
            known = manifest.indexed_types()
            unknown = [t for t in req.types if t.lstrip(".").lower() not in known]
            if unknown and len(unknown) == len(req.types) and svc.state() not in ("starting", "indexing"):
                raise ApiError("invalid_params", f"search: no indexed files of type {', '.join(unknown)}; "
                                                 f"indexed types: {', '.join(known) or 'none'}")
        return where

    def _empty_notice(self, req: SearchRequest, where: Filter, manifest: Manifest) -> str | None:
        """Why a search found nothing above the cutoff in ``manifest`` (the searcher's), when the
        reason is the filter."""
        if where.empty or manifest.filtered.any_file(where):
            return None
        parts = []
        if req.paths:
            parts.append("under " + ", ".join(req.paths))
        if req.globs:
            parts.append("matching " + ", ".join(req.globs))
        if req.types:
            parts.append("of type " + ", ".join(req.types) + " (indexed types: "
                         + (", ".join(manifest.indexed_types()) or "none") + ")")
        if req.excludes:
            parts.append("outside " + ", ".join(req.excludes))
        if req.since is not None:
            parts.append("modified since " + time.strftime("%Y-%m-%d %H:%M", time.localtime(req.since)))
        return "no indexed files " + " and ".join(parts)

    def _indexing_progress(self) -> dict[str, int] | None:
        """``{"done", "total"}`` files while files wait to be indexed (the first index, a large
        batch, or a paused indexer), else None."""
        p = self.svc.progress()
        if p["files_queued"] == 0 and p["state"] != "starting":
            return None
        return {"done": p["files_done"], "total": p["files_total"]}

    def similar(self, req: SimilarRequest) -> dict[str, Any]:
        self._wait_ready()
        searcher = self.svc.serving_index()  # the previous index's during a rebuild, like its hits
        rows = searcher.manifest.chunks_of(req.path)
        if not rows:
            raise ApiError("not_found", f"similar: {req.path} is not indexed")
        if req.line is not None and not any(r.start_line <= req.line <= r.end_line for r in rows):
            last = max(r.end_line for r in rows)
            raise ApiError("not_found", f"similar: line {req.line} of {req.path} is not indexed "
                           f"(indexed lines: 1..{last})")
        return {"hits": searcher.similar(req.path, req.line, req.limit)}

    def reindex(self, req: ReindexRequest) -> dict[str, Any]:
        from pathlib import Path

        self._wait_ready()
        return {"queued": self.svc.reindex(Path(req.path).resolve() if req.path is not None else None)}

    def pause(self, req: PauseRequest) -> dict[str, Any]:
        self._wait_ready()
        self.svc.pause()
        return {"state": self.svc.state()}

    def resume(self, req: ResumeRequest) -> dict[str, Any]:
        self._wait_ready()
        self.svc.resume()
        return {"state": self.svc.state()}

    def embed(self, req: EmbedRequest) -> dict[str, Any]:
        self._wait_ready()
        results = self.svc.embed_texts(req.texts, req.kind)
        vectors = []
        for i, r in enumerate(results):
            tolist = getattr(r, "tolist", None)
            if not callable(tolist):
                raise ApiError("invalid_params", f"embed: text {i} could not be embedded: {getattr(r, 'reason', r)}")
            vectors.append([float(x) for x in tolist()])
        return {"vectors": vectors}


def _coverage(manifest: Manifest) -> dict[str, Any] | None:
    """While chunks of ``manifest`` await vectors: ``{"semantic": share of chunks with one,
    "chunks": n, "awaiting": m}`` (a search finds the others by their words only), else None."""
    counts = manifest.tallies()
    if not counts["chunks_awaiting"] or not counts["chunks"]:
        return None
    share = (counts["chunks"] - counts["chunks_awaiting"]) / counts["chunks"]
    return {"semantic": round(share, 4), "chunks": counts["chunks"], "awaiting": counts["chunks_awaiting"]}


__all__ = ["Api", "Handler", "Request"]
