"""Live changes: filesystem events on the configured folders -> paths in the indexer's change queue.

The watcher only says *which* paths may have changed; the indexer decides what changed by
comparing with the manifest, so a dropped, duplicated or reordered event is harmless. A folder
created, moved or deleted is expanded into its files; an ignore file that changes triggers a
rescan; a periodic light reconcile catches whatever the OS dropped (inotify limits, overflows).

On Linux, `semdexd.watch.inotify.InotifyTree` sets one inotify watch per *admitted* folder (never in
``node_modules``, ``.git``, ``~/.cache`` or anything else the ignore rules exclude) on one inotify
instance read by one thread. Elsewhere (macOS FSEvents, Windows, BSD kqueue) watchdog's Observer
watches each root recursively: FSEvents does not charge per folder, and events from ignored
folders are dropped by the indexer's rules.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from semdexd.index.pipeline import Indexer
from semdexd.tree.ignore import IGNORE_FILES, walk, watch_points

if TYPE_CHECKING:
    from semdexd.watch.inotify import InotifyTree

log = structlog.get_logger()

_IGNORED_KINDS = {"opened", "closed_no_write"}


class _Handler(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[FileSystemEvent], None]) -> None:
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_KINDS:
            return
        try:
            self._on_event(event)
        except Exception:  # never let one odd event kill the observer thread
            log.exception("watch_event_failed", event=repr(event))


class Watcher:
    """Feeds ``indexer`` from filesystem events; `start()`/`stop()`; `rescan()` on demand.

    Threads: on Linux two (the inotify reader and the reconciler), whatever the number of folders.
    """

    def __init__(self, indexer: Indexer, reconcile_interval_s: int, use_inotify: bool | None = None) -> None:
        self.indexer = indexer
        self.reconcile_interval_s = reconcile_interval_s
        if use_inotify is None:
            use_inotify = sys.platform.startswith("linux")
        self.tree: InotifyTree | None = None
        if use_inotify:
            from semdexd.watch.inotify import InotifyTree
            self.tree = InotifyTree(indexer, self.rescan)
        self._observer: BaseObserver | None = None   # not on Linux: it opens an fd and a thread at once
        self._stop = threading.Event()
        self._rescan = threading.Event()
        self._reconciler: threading.Thread | None = None

    def start(self) -> None:
        if self.tree is not None:
            self.tree.start()
        else:
            self._start_observer()
        self._reconciler = threading.Thread(target=self._reconcile_loop, name="reconcile", daemon=True)
        self._reconciler.start()

    def _start_observer(self) -> None:
        self._observer = Observer()
        handler = _Handler(self._on_event)
        for root in self.indexer.roots:
            if root.is_dir():  # watching /: never set watches in /proc, /sys, /dev, /run
                for path, recursive in watch_points(root, self.indexer.roots[root]):
                    self._observer.schedule(handler, str(path), recursive=recursive)
            else:
                log.warning("folder_missing", folder=str(root))
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._stop.set()
        self._rescan.set()
        if self.tree is not None:
            self.tree.stop()
        elif self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        if self._reconciler:
            self._reconciler.join(5)

    def rescan(self) -> None:
        """Ask for a reconcile scan soon (from any thread)."""
        self._rescan.set()

    def _reconcile_loop(self) -> None:
        interval = self.reconcile_interval_s or None
        while not self._stop.is_set():
            self._rescan.wait(interval)
            if self._stop.is_set():
                return
            self._rescan.clear()
            try:
                if self.tree is not None:
                    self.tree.ensure_roots()
                self.indexer.scan()
            except Exception:
                log.exception("reconcile_failed")

    # ------------------------------------------------------------ events (watchdog's Observer)

    def _on_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path] + ([event.dest_path] if getattr(event, "dest_path", "") else [])
        for raw in paths:
            path = Path(raw.decode() if isinstance(raw, bytes) else raw)
            if path.name in IGNORE_FILES:
                self._ignore_file_changed(path)
            elif event.is_directory:
                self._folder_changed(path, event.event_type)
            else:
                self.indexer.enqueue(str(path))

    def _ignore_file_changed(self, path: Path) -> None:
        where = self.indexer.root_of(path)
        if where:
            where[1].invalidate(path.parent)
        self.rescan()

    def _folder_changed(self, folder: Path, kind: str) -> None:
        if kind in ("modified", "attrib", "closed"):
            return
        for known in self.indexer.manifest.files_under(str(folder)):
            self.indexer.enqueue(known)
        where = self.indexer.root_of(folder)
        if where and folder.is_dir() and not where[1].ignored(folder, is_dir=True):
            for path, _ in walk(folder, where[1], self.indexer.cfg.index.follow_symlinks):
                self.indexer.enqueue(str(path))
