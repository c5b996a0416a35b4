"""What a filesystem event means for the index, whichever backend reported it.

A backend (inotify on Linux, watchdog's Observer elsewhere) turns the OS's events into calls on
a `ChangeSink`; the sink turns them into paths for the indexer. It only ever says which paths
*may* have changed: the indexer compares with the manifest, so a duplicate, spurious or
reordered event is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from semdexd.tree.ignore import IGNORE_FILES, IgnoreRules, walk
from semdexd.tree.roots import Roots


class Feed(Protocol):
    """Where changed paths go (the indexer's change queue)."""

    def enqueue(self, path: str, delay: float | None = None, force: bool = False) -> None: ...


class ChangeSink:
    """Events → paths for ``feed``. ``known_under(folder)`` lists the indexed files below a folder
    (they are enqueued when it changes, so that a folder deleted or moved away is forgotten);
    ``rescan()`` asks for a reconcile scan."""

    def __init__(self, roots: Roots, feed: Feed, known_under: Callable[[str], list[str]],
                 rescan: Callable[[], None]) -> None:
        self.roots = roots
        self._feed = feed
        self._known_under = known_under
        self.rescan = rescan

    def changed(self, path: Path, is_dir: bool) -> None:
        """A file or folder was written, created, deleted or moved (either end of a move)."""
        if path.name in IGNORE_FILES:
            self.ignore_file_changed(path)
        elif is_dir:
            self.folder_gone(path)
            rules = self.admitted_folder(path)
            if rules is not None:
                self.expand(path, rules)
        else:
            self._feed.enqueue(str(path))

    def file(self, path: Path) -> None:
        self._feed.enqueue(str(path))

    def ignore_file_changed(self, path: Path) -> IgnoreRules | None:
        """A `.gitignore`/`.semdexignore` changed: its folder's verdicts are computed again and a
        rescan is asked for. Returns the rules it belongs to (None outside every root)."""
        where = self.roots.root_of(path)
        if where:
            where[1].invalidate(path.parent)
        self.rescan()
        return where[1] if where else None

    def folder_gone(self, folder: Path) -> None:
        """Enqueue every indexed file under ``folder`` (the indexer forgets those no longer there)."""
        for known in self._known_under(str(folder)):
            self._feed.enqueue(known)

    def admitted_folder(self, folder: Path) -> IgnoreRules | None:
        """The rules of the root ``folder`` lies in, if it is an existing folder they admit."""
        where = self.roots.root_of(folder)
        if where and folder.is_dir() and not where[1].ignored(folder, is_dir=True):
            return where[1]
        return None

    def expand(self, folder: Path, rules: IgnoreRules) -> None:
        """Enqueue every admitted file below ``folder`` (a folder that appeared, a linked folder)."""
        for path, _ in walk(folder, rules, self.roots.follow_symlinks):
            self._feed.enqueue(str(path))
