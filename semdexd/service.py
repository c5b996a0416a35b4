"""The daemon's core: owns the model, the pool, the store, the indexer and the watcher.

`Service` is what `semdexd run` builds once; the socket server only sees `handlers()`, a map of
method name -> callable(params: dict) -> result, each raising `ApiError` for a bad request.
(Skeleton: methods are filled in as the engine and the indexer land.)
"""

from __future__ import annotations

from typing import Any, Callable

from semdexd import PROTOCOL_VERSION, __version__
from semdexd.config import Config

Handler = Callable[[dict[str, Any]], Any]


class Service:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = "starting"

    def start(self) -> None:
        """Start background work (returns at once)."""
        self.state = "idle"

    def stop(self, drain: bool = True) -> None:
        """Stop background work; with ``drain``, finish in-flight files first."""
        self.state = "stopped"

    def reload(self, cfg: Config) -> None:
        """Apply a new config (SIGHUP): added folders are indexed, removed ones purged."""
        self.cfg = cfg

    def handlers(self) -> dict[str, Handler]:
        return {"version": self.version, "status": self.status}

    def version(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"version": __version__, "protocol": PROTOCOL_VERSION, "model": self.cfg.model.name}

    def status(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"state": self.state, "files_indexed": 0, "files_failed": 0, "files_queued": 0,
                "files_total": 0, "chunks": 0, "failures": []}
