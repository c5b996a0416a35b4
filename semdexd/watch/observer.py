"""Off Linux (macOS FSEvents, Windows, BSD kqueue): watchdog's Observer, one recursive watch per
root. FSEvents does not charge per folder, and events from ignored folders are dropped by the
indexer's rules. Watching ``/``, the root alone plus each admitted child (`watch_points`), so no
watch is ever set in /proc, /sys, /dev or /run."""

from __future__ import annotations

from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from semdexd.tree.ignore import watch_points
from semdexd.watch.sink import ChangeSink

log = structlog.get_logger()

_IGNORED_KINDS = {"opened", "closed_no_write"}
_FOLDER_CONTENT_KINDS = {"modified", "attrib", "closed"}  # a folder's own metadata: its files report themselves


class ObserverBackend(FileSystemEventHandler):
    """The `Backend` on watchdog's Observer (it opens an fd and a thread only at `start`)."""

    def __init__(self, sink: ChangeSink) -> None:
        self.sink = sink
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        self._observer = Observer()
        roots = self.sink.roots
        for root, rules in roots.items():
            if root.is_dir():
                for path, recursive in watch_points(root, rules):
                    self._observer.schedule(self, str(path), recursive=recursive)
            else:
                log.warning("folder_missing", folder=str(root))
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)

    def ensure_roots(self) -> None:
        """Nothing to do: a root that comes back is watched by the next watcher (reload)."""

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_KINDS or (event.is_directory and event.event_type in _FOLDER_CONTENT_KINDS):
            return
        try:
            for raw in [event.src_path] + ([event.dest_path] if getattr(event, "dest_path", "") else []):
                self.sink.changed(Path(raw.decode() if isinstance(raw, bytes) else raw), event.is_directory)
        except Exception:  # never let one odd event kill the observer thread
            log.exception("watch_event_failed", event=repr(event))
