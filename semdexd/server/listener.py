"""`Server`: accepts connections on the private Unix socket and serves each in its own thread.

Why threads: handlers block (a search waits on the embedding pool and on Chroma, which release
the GIL) and each conversation is sequential, so a thread per connection keeps every
conversation straight-line code. Their number is bounded (``max_connections``, 64 by default:
each idle editor holds one). When all slots are taken, the connection idle the longest (not
mid-request, not subscribed) is closed to make room; only when every connection is busy is the
new one closed at once. Together with the read timeouts of `Connection` (a silent or half-sent
connection is closed after ``request_timeout_s``) this means a flood of silent connections
cannot lock `semdex` out. The accept loop waits on a selector with a wake-up
socket, so `stop_accepting` returns promptly.
"""

from __future__ import annotations

import errno
import itertools
import os
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from semdexd.api.types import SESSION_METHODS
from semdexd.server.connection import Connection
from semdexd.server.dispatch import Dispatcher, Handler
from semdexd.server.events import EventHub
from semdexd.server.sockets import bind_private, peer_uid, remove_if_ours

EVICT_WAIT_S = 2.0  # for an evicted connection's thread to give its slot back
BUSY_GRACE_S = 0.5  # every slot busy: how long to wait for one to finish its request


def _set_send_timeout(sock: socket.socket, seconds: float) -> None:
    """A client that stops reading cannot pin a thread in sendall forever (best effort)."""
    layout = "@ll" if sys.platform.startswith("linux") else "@li4x"
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(layout, int(seconds), 0))
    except (OSError, struct.error):
        pass


class Server:
    """The socket API server. ``start`` binds and returns; ``close`` stops it and removes the socket.

    ``allowed_uid`` is the only uid whose connections are served (default: our own).
    """

    def __init__(self, path: Path, handlers: Mapping[str, Handler], *, max_request_bytes: int,
                 log: Any, max_connections: int = 64, allowed_uid: int | None = None,
                 send_timeout_s: float = 30.0, request_timeout_s: float = 5.0,
                 idle_timeout_s: float = 600.0, hub: EventHub | None = None) -> None:
        self.path = path
        extra = sorted(SESSION_METHODS) if hub is not None else []
        self._dispatcher = Dispatcher(handlers, log, extra_names=extra)
        self._hub = hub
        self._request_timeout = request_timeout_s
        self._idle_timeout = idle_timeout_s
        self._max_bytes = max_request_bytes
        self._log = log
        self._max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._uid = os.getuid() if allowed_uid is None else allowed_uid
        self._send_timeout = send_timeout_s
        self._listener: socket.socket | None = None
        self._inode = 0
        self._wake: tuple[socket.socket, socket.socket] | None = None  # (read, write) ends
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._conns: dict[threading.Thread, Connection] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Bind the socket (0600 in a 0700 dir) and start accepting. Raises SocketInUse/OSError."""
        self._listener, self._inode = bind_private(self.path)
        self._listener.setblocking(False)
        self._wake = socket.socketpair()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="semdexd-accept", daemon=True)
        self._accept_thread.start()
        self._log.info("listening", socket=str(self.path), max_connections=self._max_connections)

    def stop_accepting(self) -> None:
        """Refuse new connections (the socket file goes away); existing ones keep being served."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._wake is not None:
            self._wake[1].send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join()
        if self._listener is not None:
            self._listener.close()
            remove_if_ours(self.path, self._inode)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, end every connection, wait up to ``timeout_s`` for their threads."""
        self.stop_accepting()
        with self._lock:
            conns = list(self._conns.items())
        for _thread, conn in conns:
            conn.evict()
        deadline = time.monotonic() + timeout_s
        for thread, _conn in conns:
            thread.join(max(0.0, deadline - time.monotonic()))
        for end in self._wake or ():
            end.close()
        self._wake = None
        self._log.info("server_closed", connections_ended=len(conns))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # ------------------------------------------------------------ accepting

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake is not None
        wake = self._wake[0]
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is wake:
                        return
                    self._accept_one()

    def _accept_one(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._log.error("accept_failed", error=str(exc))
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._stopping.wait(0.1)  # back off instead of spinning while out of descriptors
            return
        conn.setblocking(True)
        if not self._slots.acquire(blocking=False) and not self._make_room():
            self._log.warning("connection_refused", reason="every connection is busy", limit=self._max_connections)
            conn.close()
            return
        served = Connection(conn, self._dispatcher, self._max_bytes, self._log, hub=self._hub,
                            request_timeout_s=self._request_timeout, idle_timeout_s=self._idle_timeout)
        thread = threading.Thread(target=self._serve, args=(conn, served), daemon=True,
                                  name=f"semdexd-conn-{next(self._ids)}")
        with self._lock:
            self._conns[thread] = served
        thread.start()

    def _make_room(self) -> bool:
        """All slots taken: evict the longest-idle evictable connection and take its slot."""
        deadline = time.monotonic() + BUSY_GRACE_S
        while True:  # a connection that has just sent its reply becomes evictable a moment later
            with self._lock:
                idle = [c for c in self._conns.values() if c.evictable]
            if idle:
                break
            if time.monotonic() > deadline or self._stopping.wait(0.02):
                return False
        victim = min(idle, key=lambda c: c.last_active)
        self._log.info("connection_evicted", reason="slots full", idle_s=round(time.monotonic() - victim.last_active, 1))
        victim.evict()
        return self._slots.acquire(timeout=EVICT_WAIT_S)

    def _serve(self, conn: socket.socket, served: Connection) -> None:
        try:
            uid = peer_uid(conn)
            if uid != self._uid:
                self._log.warning("peer_refused", uid=uid, expected=self._uid)
                return
            _set_send_timeout(conn, self._send_timeout)
            served.run()
        except Exception:  # noqa: BLE001 - a bug: logged, the other connections go on
            self._log.exception("connection_failed")
        finally:
            conn.close()
            with self._lock:
                self._conns.pop(threading.current_thread(), None)
            self._slots.release()
