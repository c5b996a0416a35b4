"""Byte stream <-> messages, for the two framings a connection may speak.

A codec is fed raw bytes and yields `Request`s (to dispatch) and `FrameError`s (to answer
directly). Both codecs bound what they buffer by ``max_bytes``: a frame that grows beyond it
yields a fatal ``too_large`` error at once, without waiting for the rest. `detect` picks the codec
from the first non-blank byte of a connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from semdexd.api.rpc import (
    NOTIFY,
    REQUEST,
    RESPONSE,
    WHITESPACE,
    encode_json,
    is_msgpack_array_start,
    jsonable,
    rpc_error,
)


@dataclass(frozen=True)
class Request:
    """A call to dispatch; ``notify`` requests (msgpack-rpc type 2) get no reply."""

    method: Any
    params: Any
    msgid: Any = None
    notify: bool = False


@dataclass(frozen=True)
class FrameError:
    """A message that could not be read; ``fatal`` means the connection must close after the reply."""

    code: str
    message: str
    msgid: Any = None
    fatal: bool = False


Item = Request | FrameError


class Codec(Protocol):
    name: str

    def feed(self, data: bytes) -> list[Item]: ...

    def at_eof(self) -> list[Item]: ...

    def reply(self, msgid: Any, error: dict[str, str] | None, result: Any) -> bytes: ...

    def notification(self, method: str, payload: Any, lua: str | None = None) -> bytes: ...

    def pending(self) -> bool: ...


def _too_large(max_bytes: int) -> FrameError:
    return FrameError("too_large", f"request larger than {max_bytes} bytes (server.max_request_bytes); "
                      "closing the connection", fatal=True)


class JsonLines:
    """Newline-delimited JSON objects: ``{"id": ..., "method": ..., "params": {...}}``.

    A line that is not valid JSON gets a ``bad_request`` reply and the connection goes on (the
    next newline resynchronises). Unterminated input at EOF is read as a last line.
    """

    name = "json"

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._buf = bytearray()
        self._scanned = 0

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        out: list[Item] = []
        while True:
            newline = self._buf.find(b"\n", self._scanned)
            if newline < 0:
                self._scanned = len(self._buf)
                if len(self._buf) > self._max:
                    self._buf.clear()
                    out.append(_too_large(self._max))
                return out
            line = bytes(self._buf[:newline])
            del self._buf[: newline + 1]
            self._scanned = 0
            if len(line) > self._max:
                out.append(_too_large(self._max))
                return out
            if line.strip():
                out.append(self._parse(line))

    def at_eof(self) -> list[Item]:
        line, self._buf = bytes(self._buf), bytearray()
        return [self._parse(line)] if line.strip() else []

    @staticmethod
    def _parse(line: bytes) -> Item:
        try:
            obj = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
            return FrameError("bad_request", f"not valid JSON: {exc}")
        except RecursionError:
            return FrameError("bad_request", "JSON nested too deeply")
        if not isinstance(obj, dict):
            return FrameError("bad_request", 'a request is a JSON object: {"id": 1, "method": "...", "params": {...}}')
        return Request(obj.get("method"), obj.get("params"), obj.get("id"))

    def reply(self, msgid: Any, error: dict[str, str] | None, result: Any) -> bytes:
        return encode_json({"id": msgid, "error": error, "result": result})

    def notification(self, method: str, payload: Any, lua: str | None = None) -> bytes:
        """``{"method": ..., "params": payload}`` (no ``id``: not a reply); ``lua`` is msgpack-only."""
        return encode_json({"method": method, "params": payload})

    def pending(self) -> bool:
        """True while part of a request is buffered (a line without its newline)."""
        return bool(self._buf.strip())


class MsgpackRpc:
    """msgpack-rpc: requests ``[0, msgid, method, params]``, notifications ``[2, method, params]``.

    A msgpack stream cannot resynchronise after corrupt bytes, so decoding errors are fatal;
    a well-formed object that is not an rpc message gets a non-fatal ``bad_request``.
    """

    name = "msgpack"

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._unpacker = msgpack.Unpacker(max_buffer_size=max_bytes, raw=False)
        self._fed = 0
        self._done = 0  # stream offset after the last complete object (tell() also counts
        #                 the bytes of a partly decoded one)

    def feed(self, data: bytes) -> list[Item]:
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            return [_too_large(self._max)]
        self._fed += len(data)
        out: list[Item] = []
        try:
            for obj in self._unpacker:
                self._done = self._unpacker.tell()
                item = self._message(obj)
                if item is not None:
                    out.append(item)
        except (ValueError, msgpack.UnpackException) as exc:
            if "exceeds max" in str(exc):
                out.append(_too_large(self._max))
            else:
                out.append(FrameError("bad_request", f"malformed msgpack: {exc}", fatal=True))
        return out

    def at_eof(self) -> list[Item]:
        if self.pending():
            return [FrameError("bad_request", "truncated msgpack message at end of stream", fatal=True)]
        return []

    @staticmethod
    def _message(obj: Any) -> Item | None:
        if isinstance(obj, list) and obj:
            kind = obj[0]
            if kind == REQUEST and len(obj) == 4:
                if not isinstance(obj[1], int) or isinstance(obj[1], bool):
                    return FrameError("bad_request", "msgid must be an integer")
                return Request(obj[2], obj[3], obj[1])
            if kind == NOTIFY and len(obj) == 3:
                return Request(obj[1], obj[2], notify=True)
            if kind == RESPONSE and len(obj) == 4:
                return None  # we never send requests: a stray response is ignored
        return FrameError("bad_request", "expected a msgpack-rpc request [0, msgid, method, params] "
                          "or notification [2, method, params]")

    def reply(self, msgid: Any, error: dict[str, str] | None, result: Any) -> bytes:
        wire = None if error is None else rpc_error(error)
        return bytes(msgpack.packb([RESPONSE, msgid, wire, result], default=jsonable, use_bin_type=True))

    def notification(self, method: str, payload: Any, lua: str | None = None) -> bytes:
        """``[2, method, [payload]]``; with ``lua`` (Neovim): ``[2, "nvim_exec_lua", [lua, [payload]]]``."""
        message = [NOTIFY, "nvim_exec_lua", [lua, [payload]]] if lua else [NOTIFY, method, [payload]]
        return bytes(msgpack.packb(message, default=jsonable, use_bin_type=True))

    def pending(self) -> bool:
        """True while part of a message is buffered."""
        return self._fed > self._done


def detect(data: bytes, max_bytes: int) -> tuple[Codec | None, bytes]:
    """Choose the codec from the first non-blank byte of ``data``.

    Returns ``(codec, rest)``; ``(None, b"")`` while only blanks were seen; raises ValueError for
    bytes that start neither framing.
    """
    start = 0
    while start < len(data) and data[start] in WHITESPACE:
        start += 1
    if start == len(data):
        return None, b""
    first = data[start]
    if is_msgpack_array_start(first) and start == 0:
        return MsgpackRpc(max_bytes), data
    if first == ord("{"):
        return JsonLines(max_bytes), data[start:]
    raise ValueError(
        f"unrecognised framing (first byte 0x{first:02x}): send a msgpack-rpc array "
        '[0, msgid, method, params] or a JSON line {"id": 1, "method": "version", "params": {}}'
    )
