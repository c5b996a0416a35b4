"""Linux: one inotify watch per *admitted* folder, on one inotify instance read by one thread.

watchdog's recursive inotify observer sets a watch in every sub-folder, ignored or not
(``~/.cache``, ``node_modules``, ``.git``, venvs): each costs kernel memory and counts against
the per-user ``fs.inotify.max_user_watches``, and every write there wakes the daemon. Scheduling a
non-recursive watchdog watch per folder instead would cost one emitter thread per folder. So this
module uses watchdog's `InotifyFD` (a shared inotify instance with per-watch callbacks and one
reader thread) and decides itself which folders get a watch: the ignore rules (built-in excludes,
config globs, hidden files, ``.gitignore``/``.semdexignore``) and the pseudo-mount check, exactly
as a scan prunes them.

Contract (`InotifyTree`):
- `start()` watches every admitted folder under each root (the watch on a folder is set before
  it is listed, so nothing created meanwhile is missed).
- A folder created or moved in gets a watch (and so does everything admitted below it, which is
  listed and whose files are enqueued: a folder created inside a new folder before its watch
  existed is found by that listing); a folder deleted or moved away loses its watches (and the
  files recorded under it are enqueued, so the indexer forgets them).
- An ignore file that changes re-decides the folders below it: a folder newly ignored loses its
  watch, one newly admitted gains one; then ``on_lost`` asks for a reconcile scan.
- A kernel queue overflow re-syncs the watches of every root and calls ``on_lost`` (a rescan).
- A folder that cannot be watched (permissions, the watch limit) is logged; the periodic
  reconcile still covers it.

What an event means for the index is the `ChangeSink`'s to say, as for every backend.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import structlog
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchDescriptor,
)

from semdexd.tree.ignore import IGNORE_FILES, IgnoreRules
from semdexd.watch.sink import ChangeSink

log = structlog.get_logger()

C = InotifyConstants
# File writes (close after write, in-place modify, touch), entries created/deleted/moved, and the
# folder itself going away. IN_ONLYDIR: never a watch on a file; IN_DONT_FOLLOW: a symlinked
# folder below a root is not watched live (as before: the reconcile covers it).
FOLDER_MASK = Mask(C.IN_MODIFY | C.IN_ATTRIB | C.IN_CLOSE_WRITE | C.IN_MOVED_FROM | C.IN_MOVED_TO
                   | C.IN_CREATE | C.IN_DELETE | C.IN_DELETE_SELF | C.IN_MOVE_SELF
                   | C.IN_ONLYDIR | C.IN_DONT_FOLLOW | C.IN_EXCL_UNLINK)
ROOT_MASK = Mask(FOLDER_MASK & ~C.IN_DONT_FOLLOW)   # a root may itself be a symlink
_ID = CallbackId(0)


class InotifyTree:
    """The `Backend` on Linux: watches the admitted folders of ``sink.roots`` (see the module
    docstring)."""

    def __init__(self, sink: ChangeSink) -> None:
        self.sink = sink
        self.roots = sink.roots
        self._fd: InotifyFD | None = None   # created by start(): one fd and one reader thread
        self._lock = threading.RLock()
        self._wd: dict[Path, WatchDescriptor] = {}
        self._path: dict[WatchDescriptor, Path] = {}
        self._limit_logged = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._fd = InotifyFD()
        self._fd.name = "inotify"
        self._fd.start()
        for root, rules in self.roots.items():
            if root.is_dir():
                self._add_tree(root, rules, enqueue=False)
            else:
                log.warning("folder_missing", folder=str(root))
        log.info("watching", folders=len(self._wd))

    def stop(self) -> None:
        if self._fd is not None:
            self._fd.stop()
            self._fd.join(5)
        with self._lock:
            self._wd.clear()
            self._path.clear()

    def ensure_roots(self) -> None:
        """Watch every root that exists and has no watch (one deleted and created again, or
        missing at start): called before each reconcile scan."""
        for root, rules in self.roots.items():
            with self._lock:
                known = root in self._wd
            if not known and root.is_dir():
                log.info("watching_again", folder=str(root))
                self._add_tree(root, rules, enqueue=False)

    def watched(self) -> list[Path]:
        """The folders that have a watch now, sorted."""
        with self._lock:
            return sorted(self._wd)

    # ------------------------------------------------------------ watchdog's WatchCallback

    def on_event(self, event: InotifyEvent) -> None:
        try:
            self._handle(event)
        except Exception:  # never let one odd event kill the reader thread
            log.exception("watch_event_failed", event=repr(event))

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        with self._lock:
            path = self._path.pop(wd, None)
            if path is not None and self._wd.get(path) == wd:
                del self._wd[path]

    def on_queue_overflow(self) -> None:
        log.warning("watch_overflow", hint="events were lost: re-syncing the watches and rescanning")
        for root, rules in self.roots.items():
            if root.is_dir():
                self._sync(root, rules)

    def on_events_lost(self) -> None:
        """After every callback's overflow handling: the watches are whole again, so rescan."""
        self.sink.rescan()

    # ------------------------------------------------------------ events

    def _handle(self, event: InotifyEvent) -> None:
        with self._lock:
            folder = self._path.get(event.wd)
        if folder is None:
            return
        if not event.name:   # the watched folder itself was deleted or moved
            if (event.is_delete_self or event.is_move_self) and folder in self.roots:
                log.warning("folder_gone", folder=str(folder))
                self.sink.rescan()
            return
        path = folder / os.fsdecode(event.name)
        if path.name in IGNORE_FILES:
            rules = self.sink.ignore_file_changed(path)
            if rules is not None:
                self._sync(path.parent, rules)
        elif event.is_directory:
            self._folder_changed(path, event)
        elif self.roots.follow_symlinks and (event.is_create or event.is_moved_to) and _linked_dir(path):
            rules = self.sink.admitted_folder(path)
            if rules is not None:
                self.sink.expand(path, rules)
        else:
            self.sink.file(path)

    def _folder_changed(self, folder: Path, event: InotifyEvent) -> None:
        if not (event.is_create or event.is_delete or event.is_move):
            return
        self.sink.folder_gone(folder)
        if event.is_moved_from or event.is_delete:
            self._prune(folder)
            return
        rules = self.sink.admitted_folder(folder)
        if rules is not None:
            self._add_tree(folder, rules, enqueue=True)

    # ------------------------------------------------------------ the watch table

    def _add_tree(self, top: Path, rules: IgnoreRules, enqueue: bool) -> None:
        """Watch ``top`` and every admitted folder below it; a watch is set before its folder is
        listed. With ``enqueue``, the admitted files found are enqueued (a new folder's content)."""
        follow = self.roots.follow_symlinks
        stack = [top]
        while stack:
            folder = stack.pop()
            if not self._watch(folder, folder in self.roots):
                continue
            try:
                dev = folder.stat().st_dev
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        if enqueue:
                            self._enqueue_entry(entry, rules, follow)
                    elif rules.enters(entry, dev):
                        stack.append(Path(entry.path))
                except OSError:
                    continue

    def _enqueue_entry(self, entry: os.DirEntry[str], rules: IgnoreRules, follow: bool) -> None:
        """Enqueue a file (or a symlink) found in a new folder; with ``follow``, a link to a folder
        is expanded into its files (it is not watched: the reconcile covers it)."""
        path = Path(entry.path)
        linked_dir = follow and entry.is_dir(follow_symlinks=True)
        if rules.ignored(path, linked_dir):
            return
        if not linked_dir:
            self.sink.file(path)
            return
        self.sink.expand(path, rules)

    def _watch(self, folder: Path, is_root: bool) -> bool:
        """Set a watch on ``folder`` (if it has none); False when it cannot be watched."""
        with self._lock:
            if folder in self._wd:
                return True
            if self._fd is None:
                return False
            try:
                wd = self._fd.add_callback(os.fsencode(folder), ROOT_MASK if is_root else FOLDER_MASK, self, _ID)
            except OSError as exc:
                self._cannot_watch(folder, exc)
                return False
            if wd < 0:   # watchdog returns -1 for EACCES instead of raising
                self._fd.remove_callbacks([(wd, _ID)])
                return False
            old = self._path.get(wd)
            if old is not None:   # the same folder under another name (a bind mount): keep one
                self._wd.pop(old, None)
            self._wd[folder] = wd
            self._path[wd] = folder
            return True

    def _cannot_watch(self, folder: Path, exc: OSError) -> None:
        if exc.errno == errno.ENOSPC:
            if not self._limit_logged:
                self._limit_logged = True
                log.warning("watch_limit_reached", folder=str(folder), watches=len(self._wd),
                            hint="raise fs.inotify.max_user_watches (sysctl); meanwhile folders "
                                 "beyond the limit are picked up by the periodic reconcile only")
        elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            log.warning("watch_failed", folder=str(folder), error=str(exc))

    def _prune(self, top: Path) -> None:
        """Remove the watches of ``top`` and of every folder below it."""
        with self._lock:
            self._drop([p for p in self._wd if p == top or _below(p, top)])

    def _drop(self, folders: list[Path]) -> None:
        with self._lock:
            pairs = [(self._wd.pop(p), _ID) for p in folders if p in self._wd]
            for wd, _ in pairs:
                self._path.pop(wd, None)
            if pairs and self._fd is not None:
                self._fd.remove_callbacks(pairs)

    def _sync(self, top: Path, rules: IgnoreRules) -> None:
        """Re-decide the folders below ``top``: drop the watches of those now ignored or gone,
        add watches on those admitted and not watched yet."""
        with self._lock:
            below = [p for p in self._wd if _below(p, top)]
        self._drop([p for p in below if rules.ignored(p, True) or not p.is_dir()])
        if top in self.roots or not rules.ignored(top, True):
            self._add_tree(top, rules, enqueue=False)


def _linked_dir(path: Path) -> bool:
    """``path`` is a symlink to a folder."""
    try:
        return path.is_symlink() and path.is_dir()
    except OSError:
        return False


def _below(path: Path, top: Path) -> bool:
    """``path`` is strictly below ``top`` (string prefix: cheaper than Path.parents on big tables)."""
    return str(path).startswith(str(top).rstrip("/") + "/")
