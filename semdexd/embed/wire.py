"""The broker's socket I/O: the local ROUTER, the optional remote ROUTER, and a wake-up pipe.

`Wire.poll` waits for a frame or a wake-up; `Wire.messages` yields decoded ``(sock, identity,
message)``; `Wire.reply` never blocks (a frame to a vanished peer is dropped and reported False).
Only the broker thread uses a `Wire`, except `wake`, which any thread may call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
import zmq

from semdexd.config import Config
from semdexd.embed import frames as p


class Wire:
    """Sockets of one broker; `open` binds them, `close` releases them and the ipc file."""

    def __init__(self, cfg: Config, endpoint: str) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self.log = structlog.get_logger()
        self.local: zmq.Socket[bytes] | None = None
        self.remote: zmq.Socket[bytes] | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._auth: Any = None
        self._poller = zmq.Poller()
        self._lock = threading.Lock()
        self._wake_r = self._wake_w = -1

    def open(self) -> None:
        """Bind the local ROUTER (and the remote one if configured: ValueError if unusable)."""
        self._ctx = zmq.Context()
        self.local = self._ctx.socket(zmq.ROUTER)
        self.local.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.local.setsockopt(zmq.LINGER, 0)
        self.local.bind(self.endpoint)
        if self.cfg.pool.remote_endpoint:
            from semdexd.embed.remote import bind_remote

            try:
                self.remote, self._auth = bind_remote(self._ctx, self.cfg.pool.remote_endpoint,
                                                      self.cfg.pool.curve_secret_key_file)
            except ValueError:
                self.local.close(linger=0)
                self._ctx.term()
                raise
            self.log.info("embed_remote_endpoint", endpoint=self.cfg.pool.remote_endpoint)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        for sock in (self.local, self.remote):
            if sock is not None:
                self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._wake_r, zmq.POLLIN)

    def wake(self) -> None:
        """Interrupt `poll` (any thread; a no-op once closed)."""
        with self._lock:
            if self._wake_w < 0:
                return
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass  # pipe full: already awake

    def poll(self, timeout_ms: int) -> list[zmq.Socket[bytes]]:
        """Sockets with frames waiting, after at most ``timeout_ms`` (sooner when woken)."""
        events = dict(self._poller.poll(timeout=timeout_ms))
        if self._wake_r in events:
            os.read(self._wake_r, 4096)
        return [s for s in (self.local, self.remote) if s is not None and s in events]

    def messages(self, sock: zmq.Socket[bytes]) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Every frame waiting on ``sock``, decoded; bad frames are logged and skipped."""
        while True:
            try:
                identity, frame = sock.recv_multipart(flags=zmq.NOBLOCK)[:2]
            except zmq.Again:
                return
            except ValueError:
                continue  # wrong frame count
            try:
                yield identity, p.unpack(frame)
            except p.ProtocolError as exc:
                self.log.warning("embed_bad_frame", worker=identity.decode(errors="replace"), error=str(exc))

    @staticmethod
    def reply(sock: zmq.Socket[bytes] | None, identity: bytes, frame: bytes) -> bool:
        """Send without blocking; False when the peer is unknown or gone."""
        if sock is None:
            return False
        try:
            sock.send_multipart([identity, frame], flags=zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def close(self) -> None:
        """Close sockets, authenticator, context, wake pipe; remove the ipc file."""
        for sock in (self.local, self.remote):
            if sock is not None:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()
        with self._lock:  # wake must never write into a recycled descriptor number
            if self._wake_r >= 0:
                os.close(self._wake_r)
                os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        if self.endpoint.startswith("ipc://"):
            Path(self.endpoint[len("ipc://"):]).unlink(missing_ok=True)
