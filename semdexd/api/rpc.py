"""The wire protocol of semdexd's socket, shared by the daemon and the thin client.

Contract (full text in docs/protocol.md):

* Two framings on the same Unix socket, chosen by the first byte a client sends:
  msgpack-rpc (a msgpack array: ``[0, msgid, method, params]`` -> ``[1, msgid, error, result]``,
  notifications ``[2, method, params]`` get no reply), or newline-delimited JSON
  (``{"id": 1, "method": "search", "params": {...}}`` -> ``{"id": 1, "error": null, "result": ...}``).
* Errors are ``{"code": str, "message": str}`` in JSON lines and ``[type, "code: message"]`` in
  msgpack-rpc (what Neovim shows: `rpc_error`, read back by `parse_rpc_error`); codes are
  listed in `ERROR_CODES`.
* After ``subscribe``, notifications: ``[2, kind, [payload]]`` / ``{"method": kind, "params": ...}``.
* Methods may be called bare (``search``) or versioned (``v1.search``); `split_method` resolves both.

This module imports only the standard library: the client imports it and must start fast.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from semdexd import PROTOCOL_VERSION
from semdexd.api.types import METHODS as API_METHODS

REQUEST, RESPONSE, NOTIFY = 0, 1, 2  # msgpack-rpc message types

METHODS: tuple[str, ...] = tuple(API_METHODS)  # derived from the request types (semdexd.api.types)

ERROR_CODES: tuple[str, ...] = (
    "bad_request",      # malformed message (not JSON / msgpack-rpc, params not an object)
    "invalid_params",   # a param of the wrong type, out of its range, unknown, missing, a relative path
    "unknown_method",   # no such method (or an unsupported protocol version prefix)
    "too_large",        # a frame above the daemon's max_request_bytes; the connection closes
    "not_found",        # e.g. `similar` on a file that is not indexed
    "unavailable",      # the method exists but cannot run now (still starting, failed to start)
    "internal",         # a bug in the daemon; logged with a traceback, the daemon keeps serving
)

WHITESPACE = frozenset(b" \t\r\n")


def is_msgpack_array_start(byte: int) -> bool:
    """True if ``byte`` starts a msgpack array (fixarray, array16 or array32)."""
    return 0x90 <= byte <= 0x9F or byte in (0xDC, 0xDD)


def split_method(name: str) -> tuple[int | None, str]:
    """``"v1.search"`` -> ``(1, "search")``; ``"search"`` -> ``(None, "search")``.

    A prefix that is not ``v<digits>.`` is not a version: the whole name is returned.
    """
    head, dot, rest = name.partition(".")
    if dot and len(head) > 1 and head[0] == "v" and head[1:].isdigit():
        return int(head[1:]), rest
    return None, name


def normalise_params(params: Any) -> dict[str, Any]:
    """Named params from what a client sent.

    Accepts a dict, ``None`` or an empty array (no params), or an array whose single element is a
    dict (what Neovim's ``rpcrequest(chan, method, {...})`` sends) or an empty array (Neovim's
    ``{}``). Raises ValueError otherwise.
    """
    if params is None:
        return {}
    if isinstance(params, dict):
        return params
    if isinstance(params, (list, tuple)):
        if not params:
            return {}
        if len(params) == 1 and isinstance(params[0], dict):
            return params[0]
        if len(params) == 1 and params[0] == []:
            return {}  # Neovim sends an empty Lua table ({}) as an empty array
    raise ValueError("params must be an object of named params (or an array holding one object)")


def jsonable(obj: Any) -> Any:
    """``default=`` hook for json/msgpack: numpy arrays and scalars, paths, sets, tuples."""
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    tolist = getattr(obj, "tolist", None)  # numpy array or scalar, without importing numpy
    if callable(tolist):
        return tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def encode_json(obj: Any) -> bytes:
    """One JSON line (UTF-8, newline-terminated)."""
    return json.dumps(obj, default=jsonable, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def error(code: str, message: str) -> dict[str, str]:
    """The wire form of an error."""
    return {"code": code, "message": message}


# Neovim's msgpack-rpc keeps an error's text only when it is a string or ``[type, message]``
# with type 0 (Exception) or 1 (Validation) (src/nvim/msgpack_rpc/channel.c); anything else
# reads "unknown error". Errors caused by the request itself are Validation errors.
NVIM_EXCEPTION, NVIM_VALIDATION = 0, 1
_VALIDATION_CODES = frozenset({"bad_request", "invalid_params", "unknown_method", "too_large", "not_found"})


def rpc_error(err: dict[str, str]) -> list[Any]:
    """The msgpack-rpc form of an error: ``[type, "code: message"]`` (what Neovim shows)."""
    kind = NVIM_VALIDATION if err.get("code") in _VALIDATION_CODES else NVIM_EXCEPTION
    return [kind, f"{err.get('code')}: {err.get('message')}"]


def parse_rpc_error(raw: Any) -> tuple[str, str]:
    """``(code, message)`` from a msgpack-rpc error: ``[type, "code: message"]``, a
    ``{code, message}`` map (JSON lines, older daemons) or a bare string."""
    if isinstance(raw, dict):
        return str(raw.get("code", "error")), str(raw.get("message", raw))
    text = raw[1] if isinstance(raw, (list, tuple)) and len(raw) == 2 else raw
    text = str(text)
    code, sep, message = text.partition(": ")
    if sep and code in ERROR_CODES:
        return code, message
    return "error", text


def call_json(path: Path | str, method: str, params: dict[str, Any] | None = None,
              timeout: float = 10.0) -> Any:
    """One blocking JSON-framed request on a fresh connection; returns the result.

    Raises OSError (FileNotFoundError, ConnectionRefusedError, timeout) when the socket does not
    answer, and RuntimeError(code, message) for an error reply. Used by ``semdexd start|status``.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(encode_json({"id": 1, "method": method, "params": params or {}}))
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("daemon closed the connection without a reply")
            buf += chunk
    reply = json.loads(buf)
    if reply.get("error"):
        raise RuntimeError(reply["error"].get("code"), reply["error"].get("message"))
    return reply.get("result")


__all__ = [
    "ERROR_CODES",
    "METHODS",
    "NOTIFY",
    "PROTOCOL_VERSION",
    "REQUEST",
    "RESPONSE",
    "call_json",
    "encode_json",
    "error",
    "is_msgpack_array_start",
    "jsonable",
    "normalise_params",
    "split_method",
]
