"""One client connection: read bytes, detect the framing, answer each request in order.

The conversation is sequential (a reply is written before the next request is read), which is
what msgpack-rpc clients such as Neovim's ``rpcrequest`` and our CLI expect. The connection
closes on EOF, on a fatal framing error (after replying), when the socket fails, when it is
evicted by the server (to make room, only while idle), or on a read timeout:

* ``request_timeout_s``: a connection must send its first complete request within this time of
  connecting, and any request it starts must be complete within this time (a half-sent request
  gets a ``bad_request`` reply before the close);
* ``idle_timeout_s`` (0 = never): silence between requests; a subscribed connection is exempt.

Subscriptions (``subscribe``/``unsubscribe``, served here since they belong to the connection):
a `semdexd.server.events.Mailbox` is drained by a writer thread that sends each event as a
notification; replies and notifications share one send lock, so they never interleave. The
mailbox is bounded and drop-oldest, so a subscriber that does not read only loses events.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

from semdexd import PROTOCOL_VERSION
from semdexd.api.rpc import encode_json, error, normalise_params, split_method
from semdexd.api.types import SESSION_METHODS, ApiError, SubscribeRequest, parse
from semdexd.server.dispatch import Dispatcher, Outcome
from semdexd.server.events import EventHub, Mailbox
from semdexd.server.framing import Codec, FrameError, Item, Request, detect

RECV_BYTES = 65536


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``sock`` to be readable (or at EOF/error)."""
    ms = max(0, int(timeout_s * 1000) + 1)
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(ms))
    ready, _, _ = select.select([sock], [], [], ms / 1000)
    return bool(ready)


class Connection:
    """Serves one accepted socket until it closes; never raises for client misbehaviour."""

    def __init__(self, sock: socket.socket, dispatcher: Dispatcher, max_bytes: int, log: Any, *,
                 hub: EventHub | None = None, request_timeout_s: float = 5.0,
                 idle_timeout_s: float = 0.0) -> None:
        self._sock = sock
        self._dispatcher = dispatcher
        self._max = max_bytes
        self._log = log
        self._hub = hub
        self._request_timeout = request_timeout_s
        self._idle_timeout = idle_timeout_s
        self._codec: Codec | None = None
        self._send_lock = threading.Lock()
        self._requests = 0
        self._partial_since: float | None = None
        self._dispatching = False
        self._evicted = False
        self.opened = time.monotonic()
        self.last_active = self.opened
        self._box: Mailbox | None = None
        self._lua: str | None = None
        self._writer: threading.Thread | None = None

    # ------------------------------------------------------------ seen by the server

    @property
    def evictable(self) -> bool:
        """Idle: not in the middle of a request and not subscribed."""
        return not (self._dispatching or self._partial_since is not None or self._box is not None)

    def evict(self) -> None:
        """Close the connection from another thread (its reads see EOF)."""
        self._evicted = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------ reading

    def run(self) -> None:
        """Serve until the client goes away or the conversation cannot go on."""
        try:
            self._serve()
        finally:
            self._unsubscribe()

    def _serve(self) -> None:
        while True:
            data = self._recv()
            if data is None:
                return
            self.last_active = time.monotonic()
            if not data:
                items = self._codec.at_eof() if self._codec else []
                self._handle_all(items)
                return
            if self._codec is None:
                rest = self._start(data)
                if rest is None:
                    return
                if self._codec is None:
                    continue
                data = rest
            if not self._handle_all(self._codec.feed(data)):
                return
            if self._codec.pending():
                self._partial_since = self._partial_since or time.monotonic()
            else:
                self._partial_since = None

    def _recv(self) -> bytes | None:
        """The next bytes (b"" at EOF), or None when the connection must close (timeout, error)."""
        timeout, why = self._deadline()
        try:
            if timeout is not None and not _readable(self._sock, timeout - time.monotonic()):
                self._timed_out(why)
                return None
            return self._sock.recv(RECV_BYTES)
        except (OSError, ValueError):  # ValueError: fd closed meanwhile
            return None

    def _deadline(self) -> tuple[float | None, str]:
        if self._partial_since is not None:
            return self._partial_since + self._request_timeout, "request incomplete"
        if self._requests == 0:
            return self.opened + self._request_timeout, "no request"
        if self._box is not None or self._idle_timeout <= 0:
            return None, ""
        return self.last_active + self._idle_timeout, "idle"

    def _timed_out(self, why: str) -> None:
        self._log.info("connection_timed_out", reason=why, requests=self._requests)
        if self._codec is not None and self._partial_since is not None:
            self._send(self._codec.reply(None, error(
                "bad_request", f"request incomplete after {self._request_timeout:g} s "
                "(server.request_timeout_s); closing the connection"), None))

    def _start(self, data: bytes) -> bytes | None:
        """Pick the codec; returns the bytes left to feed, or None after refusing the stream."""
        try:
            self._codec, rest = detect(data, self._max)
        except ValueError as exc:
            self._log.warning("bad_framing", error=str(exc))
            self._send(encode_json({"id": None, "error": error("bad_request", str(exc)), "result": None}))
            return None
        return rest

    # ------------------------------------------------------------ answering

    def _handle_all(self, items: list[Item]) -> bool:
        """Answer each item in order; False once the connection must close."""
        for item in items:
            if not self._handle(item):
                return False
        return True

    def _handle(self, item: Item) -> bool:
        assert self._codec is not None
        if isinstance(item, FrameError):
            self._log.warning("bad_message", framing=self._codec.name, code=item.code, error=item.message)
            return self._send(self._codec.reply(item.msgid, error(item.code, item.message), None)) and not item.fatal
        self._requests += 1
        self._dispatching = True
        try:
            payload = self._answer(item)
            # The request's moment is when its answer is ready, before the reply leaves: a client
            # that connects again as soon as it has the reply must find this connection older.
            self.last_active = time.monotonic()
            return True if payload is None else self._send(payload)
        finally:
            self._dispatching = False

    def _answer(self, request: Request) -> bytes | None:
        """The reply to ``request`` (None for a notification)."""
        assert self._codec is not None
        name = self._session_method(request.method)
        err, result = self._session(name, request.params) if name else \
            self._dispatcher.dispatch(request.method, request.params)
        if request.notify:
            return None
        try:
            return self._codec.reply(request.msgid, err, result)
        except (TypeError, ValueError, OverflowError) as exc:
            self._log.exception("reply_encoding_failed", method=request.method)
            return self._codec.reply(request.msgid, error("internal", f"result could not be encoded: {exc}"), None)

    def _send(self, payload: bytes) -> bool:
        try:
            with self._send_lock:
                self._sock.sendall(payload)
        except OSError as exc:
            self._log.info("client_gone", error=str(exc))
            return False
        return True

    # ------------------------------------------------------------ subscriptions

    def _session_method(self, method: Any) -> str | None:
        if self._hub is None or not isinstance(method, str):
            return None
        version, name = split_method(method)
        if name in SESSION_METHODS and version in (None, PROTOCOL_VERSION):
            return name
        return None

    def _session(self, name: str, params: Any) -> Outcome:
        try:
            req = parse(name, normalise_params(params))
        except ApiError as exc:
            return exc.to_wire(), None
        except ValueError as exc:
            return error("bad_request", str(exc)), None
        self._unsubscribe()
        self._log.info("request", method=name)
        if not isinstance(req, SubscribeRequest):
            return None, {"subscribed": False}
        assert self._hub is not None
        kinds = frozenset(req.events) if req.events else None
        self._box = self._hub.subscribe(kinds)
        self._lua = req.lua
        self._writer = threading.Thread(target=self._push, args=(self._box,), daemon=True,
                                        name=f"{threading.current_thread().name}-push")
        self._writer.start()
        return None, {"subscribed": True, "events": sorted(self._box.kinds), "lua": req.lua is not None}

    def _push(self, box: Mailbox) -> None:
        """Writer thread: send each event of ``box`` until it is closed or the client is gone."""
        assert self._codec is not None
        codec = self._codec
        while (event := box.get()) is not None:
            payload = {"event": event.kind, **event.payload}
            if not self._send(codec.notification(event.kind, payload, self._lua)):
                self.evict()  # the reading side ends the conversation
                return

    def _unsubscribe(self) -> None:
        box, writer = self._box, self._writer
        self._box = self._writer = None
        if box is not None and self._hub is not None:
            self._hub.unsubscribe(box)
        if writer is not None and writer is not threading.current_thread():
            writer.join(1.0)
