"""Pseudo filesystems a scan must not descend into when it watches ``/`` or ``$HOME``.

Two checks, both cheap:

* by path: ``/proc``, ``/sys``, ``/dev`` and ``/run`` (and ``/var/run``) are skipped when they lie
  *below* a watched folder (watching ``/``), whatever is mounted there; a watched folder that is
  itself inside one (``/run/media/me/usb``) is the user's choice and is scanned.
* by mount type: a folder on another device than its parent is a mount point; if the mount table
  (``/proc/self/mountinfo``, re-read when an unknown mount point shows up) gives it a pseudo or
  memory-backed type (proc, sysfs, devtmpfs, cgroup, tmpfs, fuse.gvfsd-fuse, ...) it is skipped.
  Real filesystems (ext4, xfs, btrfs, nfs, a FUSE-mounted disk, ...) are crossed as before.

On systems without ``/proc/self/mountinfo`` (macOS) only the path check applies.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

PSEUDO_PATHS: tuple[Path, ...] = tuple(Path(p) for p in ("/proc", "/sys", "/dev", "/run", "/var/run"))

PSEUDO_FS_TYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "ramfs", "cgroup", "cgroup2", "securityfs",
    "debugfs", "tracefs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs",
    "binfmt_misc", "efivarfs", "selinuxfs", "rpc_pipefs", "nsfs", "nfsd",
    "fuse.gvfsd-fuse", "fuse.portal", "fuse.lxcfs", "squashfs",
})
# squashfs: snap packages and live images mount read-only software trees (/snap/*), not documents.

MOUNTINFO = Path("/proc/self/mountinfo")
RELOAD_AFTER_S = 1.0   # a miss re-reads the table at most this often (btrfs subvolumes miss often)
_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> dict[Path, str]:
    """Mount point -> filesystem type, from the text of /proc/self/mountinfo (last mount wins)."""
    out: dict[Path, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        if len(fields) > sep + 1 and len(fields) > 4:
            out[Path(_unescape(fields[4]))] = fields[sep + 1]
    return out


def pseudo_paths_below(root: Path) -> tuple[Path, ...]:
    """The fixed pseudo paths that lie strictly below ``root`` (non-empty only for ``/``)."""
    return tuple(p for p in PSEUDO_PATHS if root in p.parents)


class MountTable:
    """Answers `is_pseudo(folder)` for mount points; thread-safe, re-reads the table on a miss."""

    def __init__(self, source: Path = MOUNTINFO) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._types: dict[Path, str] | None = None
        self._loaded_at = 0.0

    def _load(self) -> dict[Path, str]:
        try:
            return parse_mountinfo(self._source.read_text(errors="replace"))
        except OSError:
            return {}

    def fs_type(self, mount_point: Path) -> str | None:
        """The type of the filesystem mounted at ``mount_point``, or None if it is not one."""
        with self._lock:
            stale = time.monotonic() - self._loaded_at > RELOAD_AFTER_S
            if self._types is None or (mount_point not in self._types and stale):
                self._types = self._load()  # first use, or perhaps mounted since the last read
                self._loaded_at = time.monotonic()
            return self._types.get(mount_point)

    def is_pseudo(self, mount_point: Path) -> bool:
        return self.fs_type(mount_point) in PSEUDO_FS_TYPES
