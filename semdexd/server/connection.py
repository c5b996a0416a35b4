"""One client connection: read bytes, detect the framing, answer each request in order.

The conversation is sequential (a reply is written before the next request is read), which is
what msgpack-rpc clients such as Neovim's ``rpcrequest`` and our CLI expect. The connection
closes on EOF, on a fatal framing error (after replying), or when the socket fails.
"""

from __future__ import annotations

import socket
from typing import Any

from semdexd.protocol import encode_json, error
from semdexd.server.dispatch import Dispatcher
from semdexd.server.framing import Codec, FrameError, Item, Request, detect

RECV_BYTES = 65536


class Connection:
    """Serves one accepted socket until it closes; never raises for client misbehaviour."""

    def __init__(self, sock: socket.socket, dispatcher: Dispatcher, max_bytes: int, log: Any) -> None:
        self._sock = sock
        self._dispatcher = dispatcher
        self._max = max_bytes
        self._log = log
        self._codec: Codec | None = None

    def run(self) -> None:
        """Serve until the client goes away or the conversation cannot go on."""
        while True:
            try:
                data = self._sock.recv(RECV_BYTES)
            except OSError:
                return
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

    def _start(self, data: bytes) -> bytes | None:
        """Pick the codec; returns the bytes left to feed, or None after refusing the stream."""
        try:
            self._codec, rest = detect(data, self._max)
        except ValueError as exc:
            self._log.warning("bad_framing", error=str(exc))
            self._send(encode_json({"id": None, "error": error("bad_request", str(exc)), "result": None}))
            return None
        return rest

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
        return self._answer(item)

    def _answer(self, request: Request) -> bool:
        assert self._codec is not None
        err, result = self._dispatcher.dispatch(request.method, request.params)
        if request.notify:
            return True
        try:
            payload = self._codec.reply(request.msgid, err, result)
        except (TypeError, ValueError, OverflowError) as exc:
            self._log.exception("reply_encoding_failed", method=request.method)
            payload = self._codec.reply(request.msgid, error("internal", f"result could not be encoded: {exc}"), None)
        return self._send(payload)

    def _send(self, payload: bytes) -> bool:
        try:
            self._sock.sendall(payload)
        except OSError as exc:
            self._log.info("client_gone", error=str(exc))
            return False
        return True
