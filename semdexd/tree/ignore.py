"""Which paths under a watched folder are indexed: default excludes, config globs, hidden files,
and the tree's own ``.gitignore`` / ``.semdexignore`` files (gitignore semantics via pathspec).
With the default excludes on, pseudo filesystems are never entered (`semdexd.tree.mounts`: /proc,
/sys, /dev, /run below a watched ``/``, and mounts of types like proc, sysfs, tmpfs), and the
daemon's own data/state/runtime folders are never indexed (that would feed back on itself).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pathspec

from semdexd.config import DEFAULT_EXCLUDES, IndexConfig
from semdexd.tree.mounts import PSEUDO_PATHS, MountTable, pseudo_paths_below

IGNORE_FILES = (".gitignore", ".semdexignore")
# Editors' swap, backup and temp files: never worth indexing, and they churn on every keystroke.
EDITOR_TEMP = ("*.swp", "*.swx", "*.swo", "*~", ".#*", "#*#", "*.tmp", "*.part", "4913")


def _spec(lines: list[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(lines)


Chain = tuple[tuple[int, pathspec.GitIgnoreSpec], ...]   # (depth of its folder, spec), root first


@dataclass(frozen=True)
class _Folder:
    """A folder's verdict (it or a folder above it is excluded) and the ignore files that apply
    to its entries (its own and those of the folders above it)."""

    ignored: bool
    chain: Chain


class IgnoreRules:
    """Answers `ignored(path, is_dir)` for paths below ``root``. Thread-safe; ignore files are
    read lazily per folder and cached until `invalidate(folder)`.

    Cost: each folder's verdict and its chain of ignore files are computed once (from its
    parent's) and cached, so checking an entry evaluates the rules once for its own name,
    whatever its depth (a 200-level-deep tree scans in linear, not quartic, work).
    ``evaluations`` counts rule evaluations (one per entry or folder checked the first time).
    """

    def __init__(self, root: Path, cfg: IndexConfig, own_dirs: tuple[Path, ...] = ()) -> None:
        self.root = root
        fixed = pseudo_paths_below(root) if cfg.default_excludes else ()
        own = tuple(d.resolve() for d in own_dirs)
        self._never = fixed + tuple(d for d in own if root in d.parents)  # folders never entered
        self._mounts = MountTable()
        self._cfg = cfg
        base = list(EDITOR_TEMP) + (list(DEFAULT_EXCLUDES) if cfg.default_excludes else []) + list(cfg.exclude)
        self._base = _spec(base)
        self._include = _spec(list(cfg.include)) if cfg.include else None
        self._per_dir: dict[Path, pathspec.GitIgnoreSpec | None] = {}
        self._folders: dict[tuple[str, ...], _Folder] = {}
        self._lock = threading.Lock()
        self.evaluations = 0

    def invalidate(self, folder: Path) -> None:
        """An ignore file in ``folder`` changed: re-read it, and re-decide every folder."""
        with self._lock:
            self._per_dir.pop(folder, None)
            self._folders.clear()

    def _dir_spec(self, folder: Path) -> pathspec.GitIgnoreSpec | None:
        with self._lock:
            if folder in self._per_dir:
                return self._per_dir[folder]
        lines: list[str] = []
        if self._cfg.use_gitignore:
            for name in IGNORE_FILES:
                try:
                    lines += (folder / name).read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    pass
        spec = _spec(lines) if lines else None
        with self._lock:
            self._per_dir[folder] = spec
        return spec

    def ignored(self, path: Path, is_dir: bool) -> bool:
        """True when ``path`` (below root) or any folder above it is excluded."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return True
        parts = rel.parts
        if not parts:
            return False
        if self._never and any(path == d or d in path.parents for d in self._never):
            return True
        parent = self._folder(parts[:-1])
        if parent.ignored or self._excluded(parts, is_dir, parent.chain):
            return True
        if not is_dir and self._include is not None:
            return not self._include.match_file(rel.as_posix())
        return False

    def has_pseudo_below(self) -> bool:
        """True when fixed pseudo paths (/proc, /sys, ...) lie below the root (it is ``/``)."""
        return any(d in PSEUDO_PATHS for d in self._never)

    def pseudo_mount(self, folder: Path) -> bool:
        """True when ``folder`` is the mount point of a pseudo filesystem not to descend into."""
        return self._cfg.default_excludes and self._mounts.is_pseudo(folder)

    def enters(self, entry: os.DirEntry[str], parent_dev: int) -> bool:
        """Whether a walk goes into the sub-folder ``entry`` of a folder on device ``parent_dev``:
        it is not ignored, and no pseudo or memory filesystem is mounted there. OSError from
        its stat propagates."""
        path = Path(entry.path)
        if self.ignored(path, True):
            return False
        return entry.stat(follow_symlinks=False).st_dev == parent_dev or not self.pseudo_mount(path)

    def _folder(self, parts: tuple[str, ...]) -> _Folder:
        """The cached state of the folder ``root/parts``, computed down from the nearest cached
        folder above it (iteratively: no recursion limit on deep trees)."""
        with self._lock:
            cached = self._folders.get(parts)
            if cached is not None:
                return cached
            known = len(parts) - 1
            while known >= 0 and parts[:known] not in self._folders:
                known -= 1
            state = self._folders[parts[:known]] if known >= 0 else None
        if state is None:
            root_spec = self._dir_spec(self.root)
            state = _Folder(False, ((0, root_spec),) if root_spec is not None else ())
            known = 0
            with self._lock:
                self._folders[()] = state
        for depth in range(known + 1, len(parts) + 1):
            sub = parts[:depth]
            ignored = state.ignored or self._excluded(sub, True, state.chain)
            spec = None if ignored else self._dir_spec(self.root.joinpath(*sub))
            state = _Folder(ignored, state.chain + ((depth, spec),) if spec is not None else state.chain)
            with self._lock:
                self._folders[sub] = state
        return state

    def _excluded(self, parts: tuple[str, ...], is_dir: bool, chain: Chain) -> bool:
        """The rules for the last of ``parts`` alone (its folders were checked by the caller)."""
        self.evaluations += 1
        name = parts[-1]
        if not self._cfg.hidden and name.startswith(".") and name not in IGNORE_FILES:
            return True
        slash = "/" if is_dir else ""
        if self._base.match_file("/".join(parts) + slash):
            return True
        decision: bool | None = None
        for depth, spec in chain:  # root's ignore file first, the nearest one last (it wins)
            result = spec.check_file("/".join(parts[depth:]) + slash).include
            if result is not None:
                decision = result
        return bool(decision)


def watch_points(root: Path, rules: IgnoreRules) -> list[tuple[Path, bool]]:
    """Where to put (path, recursive) watches for ``root``: the root itself, recursively, except
    when pseudo filesystems lie right below it (watching ``/``): then the root alone, plus each of
    its admitted sub-folders recursively, so that no watch is ever set in /proc, /sys, /dev, /run.
    """
    if not rules.has_pseudo_below():
        return [(root, True)]
    points = [(root, False)]
    try:
        dev = root.stat().st_dev
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return points
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False) and rules.enters(entry, dev):
                points.append((Path(entry.path), True))
        except OSError:
            continue
    return points


def walk(root: Path, rules: IgnoreRules, follow_symlinks: bool) -> list[tuple[Path, os.stat_result | None]]:
    """Every candidate file below ``root`` with its lstat (folders pruned by the rules).

    Symlinks are returned (stat None means "look closer") so that the indexer can record why it
    skipped them; with ``follow_symlinks`` linked folders are entered once (loops are cut) and a
    link to a file comes with its target's stat (so an edit of the target is noticed), or the
    link's own lstat when it is broken.
    """
    out: list[tuple[Path, os.stat_result | None]] = []
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int | None]] = [(root, None)]   # (folder, its parent's st_dev)
    while stack:
        folder, parent_dev = stack.pop()
        try:
            st = folder.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                continue
            seen_dirs.add(key)
            if parent_dev is not None and st.st_dev != parent_dev and rules.pseudo_mount(folder.resolve()):
                continue  # another filesystem starts here, and it is /proc, a tmpfs, ...
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=follow_symlinks)
            except OSError:
                continue
            if rules.ignored(path, is_dir):
                continue
            if is_dir:
                if not is_link or follow_symlinks:
                    stack.append((path, st.st_dev))
                continue
            try:
                out.append((path, _entry_stat(entry, is_link and follow_symlinks)))
            except OSError:
                out.append((path, None))
    return out


def _entry_stat(entry: os.DirEntry[str], follow: bool) -> os.stat_result:
    if follow:
        try:
            return entry.stat(follow_symlinks=True)
        except OSError:
            pass
    return entry.stat(follow_symlinks=False)
