"""Read one file's bytes safely: never block on a fifo, socket or device, never raise.

The path is checked with ``stat`` (following a symlink the caller chose to follow) before it is
opened, opened with ``O_NONBLOCK``, checked again with ``fstat`` (it may have been swapped in
between), and read once, up to ``max_bytes``.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class ReadResult:
    """Either ``data`` (the whole file) or ``reason`` (``"skipped: ..."`` / ``"failed: ..."``)."""

    data: bytes = b""
    reason: str = ""


def describe_size(size: int, unit: str = "bytes") -> str:
    """``10485760`` -> ``"10 MB"`` (binary megabytes, as ``max_file_mb`` in the config);
    below 1 KB, the number and ``unit``."""
    if size >= 1 << 20:
        return f"{size / (1 << 20):g} MB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):g} KB"
    return f"{size} {unit}"


def read_bytes(path: Path, *, max_bytes: int) -> ReadResult:
    """The bytes of the regular file at ``path``, or the reason they were not read."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return ReadResult(reason=_stat_error(path, exc))
    reason = _check_kind_and_size(info, max_bytes)
    if reason:
        return ReadResult(reason=reason)
    return _read_regular(path, max_bytes)


def probe(path: Path) -> str:
    """Without opening it: ``""`` if ``path`` is a regular file, else the reason it cannot be read."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return _stat_error(path, exc)
    return "" if stat.S_ISREG(info.st_mode) else f"skipped: not a regular file ({_kind(info.st_mode)})"


def _stat_error(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return "skipped: broken symlink"
        except OSError:
            pass
    return _os_error_reason(exc)


def _os_error_reason(exc: OSError) -> str:
    """A short human reason for an OS error met while reading a file."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        return "failed: vanished before it could be read"
    if code in (errno.EACCES, errno.EPERM):
        return "failed: permission denied"
    if code == errno.ELOOP:
        return "skipped: symlink loop"
    if code == errno.ENAMETOOLONG:
        return "failed: path too long"
    if code == errno.EISDIR:
        return "skipped: not a regular file (directory)"
    text = os.strerror(code) if code else str(exc)
    return f"failed: {text[:1].lower()}{text[1:]}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _check_kind_and_size(info: os.stat_result, max_bytes: int) -> str:
    if not stat.S_ISREG(info.st_mode):
        return f"skipped: not a regular file ({_kind(info.st_mode)})"
    if info.st_size > max_bytes:
        return f"skipped: larger than {describe_size(max_bytes)}"
    return ""


def _read_regular(path: Path, max_bytes: int) -> ReadResult:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return ReadResult(reason=_os_error_reason(exc))
    try:
        reason = _check_kind_and_size(os.fstat(fd), max_bytes)
        if reason:
            return ReadResult(reason=reason)
        return _read_all(fd, max_bytes)
    except OSError as exc:
        return ReadResult(reason=_os_error_reason(exc))
    finally:
        os.close(fd)


def _read_all(fd: int, max_bytes: int) -> ReadResult:
    """Read to end of file; a file that grew past ``max_bytes`` while being read is skipped."""
    parts: list[bytes] = []
    total = 0
    while True:
        part = os.read(fd, _READ_SIZE)
        if not part:
            return ReadResult(data=b"".join(parts))
        total += len(part)
        if total > max_bytes:
            return ReadResult(reason=f"skipped: larger than {describe_size(max_bytes)}")
        parts.append(part)
