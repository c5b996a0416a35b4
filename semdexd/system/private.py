"""Files the daemon writes are the user's alone: folders 0700, files 0600, whatever the umask.

The manifest holds the text of every indexed chunk, so a world-readable data dir leaks the user's
files. Three layers keep them private:

* `restrict_umask` (``PRIVATE_UMASK`` = 0o077) is called by ``semdexd run``/``start`` (and the
  other commands that write data) before anything is created, so the files that libraries create
  on their own (Chroma's ``chroma.sqlite3`` and HNSW segments, SQLite's ``-wal``/``-shm``/
  ``-journal`` files, rotated logs) are born private.
* `private_dir` / `private_file` create our own folders and SQLite files with explicit modes, so
  they are private even in a process whose umask is wider (a library user, a test).
* `secure_tree` runs at every start over the data and state dirs: an existing folder or file with
  group/other bits (from an older version, a copy, a umask-022 run) is **tightened** (chmod, one
  ``permissions_tightened`` log event with the modes before and after), not refused: the fix is
  certain and refusing would only make the user type the same chmod. What cannot be fixed is
  refused with `PrivateDirError`: a root folder owned by another user, or a symlink/non-folder
  where a folder must be. Entries inside owned by someone else are logged and left alone.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


class PrivateDirError(RuntimeError):
    """A folder the daemon writes to cannot be made private; the message says which and why."""


@dataclass(frozen=True)
class Tightened:
    """One entry whose mode was narrowed."""

    path: Path
    before: int
    after: int


def restrict_umask() -> int:
    """Set the process umask to 0o077; return the previous one."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700 whatever the umask; return it.

    Only the folders created here get 0700 forced; an existing one is left to `secure_tree`.
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists with mode 0600 before a library (SQLite) opens it; return it.

    A new file is created empty with 0600 (SQLite treats an empty file as a new database, and
    gives its -wal/-shm files the database file's mode). An existing file keeps its content.
    """
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~0o077)
    finally:
        os.close(fd)
    return path


def _narrow(path: Path, st: os.stat_result) -> Tightened | None:
    """Drop group/other bits (a folder keeps or gets rwx for its owner); None if already private."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077 == 0:
        return None
    after = (mode & ~0o077) | (DIR_MODE if stat.S_ISDIR(st.st_mode) else 0)
    os.chmod(path, after)  # never a symlink here: callers skip them
    return Tightened(path, mode, after)


def _check_root(root: Path) -> os.stat_result:
    st = os.lstat(root)
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(root)  # a configured data dir may be a symlink to a folder we own
    if not stat.S_ISDIR(st.st_mode):
        raise PrivateDirError(f"{root} is not a folder; move it away or set [paths] in config.toml")
    if st.st_uid != os.getuid():
        raise PrivateDirError(f"{root} belongs to uid {st.st_uid}, not to this user ({os.getuid()}): "
                              f"the daemon's files there would not be private; set [paths] in config.toml "
                              f"to a folder of your own")
    return st


def secure_tree(root: Path) -> tuple[list[Tightened], list[Path]]:
    """Create ``root`` (0700) or tighten it and everything below it to 0700/0600.

    Returns (what was tightened, entries left alone because another user owns them). Symlinks
    below ``root`` are not followed. Raises PrivateDirError if ``root`` cannot be made private.
    """
    private_dir(root)
    st = _check_root(root)
    done: list[Tightened] = []
    foreign: list[Path] = []
    root_fix = _narrow(root.resolve(), st)
    if root_fix:
        done.append(Tightened(root, root_fix.before, root_fix.after))
    for folder, dirs, files in os.walk(root.resolve()):
        for name in dirs + files:
            path = Path(folder) / name
            try:
                entry = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(entry.st_mode):
                continue
            if entry.st_uid != os.getuid():
                foreign.append(path)
                continue
            fix = _narrow(path, entry)
            if fix:
                done.append(fix)
    return done, foreign


def secure_paths(roots: Iterable[Path], log: Any) -> None:
    """`secure_tree` each root; log what was tightened or left alone (see the module docstring)."""
    for root in dict.fromkeys(roots):
        done, foreign = secure_tree(root)
        if done:
            log.warning("permissions_tightened", root=str(root), count=len(done),
                        changes=[f"{t.path}: {t.before:o} -> {t.after:o}" for t in done[:20]])
        if foreign:
            log.warning("foreign_files_in_private_dir", root=str(root), count=len(foreign),
                        paths=[str(p) for p in foreign[:20]])
