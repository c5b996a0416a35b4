"""The listening Unix socket: private directory, private socket file, peer credentials.

* The socket's directory is created 0700 and must be owned by us (else we refuse to use it).
* The socket is bound under a temporary name in that directory, chmod 0600, then renamed onto
  the final path: no moment where it exists with wider permissions, and no process-wide umask
  change (other threads may be creating files meanwhile).
* A socket file left by a dead daemon (connect refused) is replaced; a live one is refused.
* `peer_uid` reads the connecting process's uid: SO_PEERCRED on Linux, LOCAL_PEERCRED on
  macOS/BSD. Where neither exists it returns None and the caller refuses the connection.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys
from pathlib import Path


class SocketInUse(RuntimeError):
    """Another live process answers on the socket path (or the path is not a socket)."""


def secure_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing; refuse a directory someone else owns or a symlink.

    Its parent must not let another user swap it out: owned by us or root, and not writable by
    others unless sticky (like /tmp). This matters for the ``$TMPDIR/semdex-$UID`` fallback.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise SocketInUse(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise SocketInUse(f"{path} is owned by uid {st.st_uid}, not by us ({os.getuid()})")
    parent = os.stat(path.parent)
    if parent.st_uid not in (os.getuid(), 0) or (parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX):
        raise SocketInUse(f"{path.parent} could be changed by another user (owner uid {parent.st_uid}, "
                          f"mode {stat.S_IMODE(parent.st_mode):o}); set XDG_RUNTIME_DIR to a private directory")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def _is_live(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # e.g. a full backlog: somebody is there
    finally:
        probe.close()
    return True


def clear_stale(path: Path) -> None:
    """Remove a dead daemon's socket file at ``path``; raise SocketInUse for a live one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketInUse(f"{path} exists and is not a socket; remove it or choose another path")
    if _is_live(path):
        raise SocketInUse(f"another semdexd is serving on {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def bind_private(path: Path, backlog: int = 128) -> tuple[socket.socket, int]:
    """Bind and listen on ``path`` with mode 0600 inside a 0700 directory.

    Returns the listening socket and the inode of the socket file (to remove only our own file
    later). Raises SocketInUse or OSError.
    """
    secure_dir(path.parent)
    clear_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return sock, os.lstat(path).st_ino


def remove_if_ours(path: Path, inode: int) -> None:
    """Unlink ``path`` only if it is still the socket file we created (same inode)."""
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass


_LOCAL_PEERCRED = 0x001  # <sys/un.h> on macOS/BSD, level SOL_LOCAL (0)


def peer_uid(conn: socket.socket) -> int | None:
    """The effective uid of the process at the other end of ``conn``, or None if unknowable."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", raw)
        return int(uid)
    if sys.platform == "darwin" or "bsd" in sys.platform:
        # struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
        raw = conn.getsockopt(0, _LOCAL_PEERCRED, 76)
        _version, uid = struct.unpack_from("=Ii", raw)
        return int(uid)
    return None
