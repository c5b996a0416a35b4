"""`Client`: calls semdexd's methods over its Unix socket (see docs/protocol.md).

    with Client() as c:                      # socket: SEMDEX_SOCKET, else from the XDG config
        hits = c.call("search", query="retry policy", limit=5)["hits"]

Speaks msgpack-rpc when ``msgpack`` is importable, else newline-delimited JSON. One connection
is opened on the first call and reused. Errors: `DaemonNotRunning` (no socket, or nobody
listening), `RemoteError` (the daemon refused the request: ``.code``, ``.message``),
`TransportError` (timeout, dropped connection, permission). Imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from semdexd.api.rpc import REQUEST, RESPONSE, encode_json, parse_rpc_error

try:
    import msgpack
except ImportError:  # the JSON framing works everywhere
    msgpack = None

DEFAULT_TIMEOUT_S = 300.0
CLOSED = "semdexd closed the connection without replying (too many clients, or it is shutting down)"
START_HINT = "Start it with: semdexd start [FOLDER ...]   (or: systemctl --user start semdexd)"


def _takes_cwd(method: str) -> bool:
    from semdexd.api.rpc import split_method
    from semdexd.api.types import METHODS, takes_cwd

    request_type = METHODS.get(split_method(method)[1])
    return request_type is not None and takes_cwd(request_type)


class ClientError(Exception):
    """Base of everything `Client.call` raises."""


class DaemonNotRunning(ClientError):
    """Nobody is serving on the socket; the message says how to start the daemon."""


class TransportError(ClientError):
    """The conversation failed: timeout, connection dropped, socket not accessible."""


class RemoteError(ClientError):
    """The daemon answered with an error ``{"code", "message"}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Client:
    """A connection to semdexd. ``socket_path`` None: resolved like the daemon does (paths.py)."""

    def __init__(self, socket_path: str | os.PathLike[str] | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT_S, framing: str | None = None) -> None:
        if socket_path is None:
            from semdex_client.paths import resolve_socket_path
            socket_path = resolve_socket_path()
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self.framing = framing or ("msgpack" if msgpack is not None else "json")
        if self.framing not in ("msgpack", "json") or (self.framing == "msgpack" and msgpack is None):
            raise ValueError(f"framing must be 'json' or 'msgpack' (installed: {msgpack is not None})")
        self._sock: socket.socket | None = None
        self._msgid = 0
        self._buf = bytearray()
        self._unpacker: Any = None

    def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method`` with named ``params``; return its result or raise a ClientError.

        For a method with path params, ``cwd`` (this process's working directory) is sent
        unless given, so relative paths mean what they mean here (docs/protocol.md).
        """
        if "cwd" not in params and _takes_cwd(method):
            try:
                params["cwd"] = os.getcwd()
            except OSError:  # the working directory was removed: relative paths get invalid_params
                pass
        sock = self._connect()
        self._msgid += 1
        try:
            sock.sendall(self._encode(self._msgid, method, params))
            error, result = self._read_reply(sock)
        except TimeoutError:
            self.close()
            raise TransportError(f"no reply from semdexd within {self.timeout:.0f} s ({method})") from None
        except (BrokenPipeError, ConnectionResetError):
            self.close()
            raise TransportError(CLOSED) from None
        except OSError as exc:
            self.close()
            raise TransportError(f"connection to semdexd failed: {exc}") from None
        if error is not None:
            raise RemoteError(*parse_rpc_error(error))
        return result

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()
        self._unpacker = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        self._check_owner()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonNotRunning(f"semdexd is not running (nothing listens on {self.socket_path}).\n{START_HINT}") from None
        except PermissionError:
            sock.close()
            raise TransportError(f"permission denied on {self.socket_path} (another user's daemon?)") from None
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot connect to {self.socket_path}: {exc}") from None
        self._sock = sock
        if self.framing == "msgpack":
            self._unpacker = msgpack.Unpacker(raw=False)
        return sock

    def _check_owner(self) -> None:
        """Refuse a socket another user created: our queries must not go to a stranger."""
        try:
            owner = os.stat(self.socket_path).st_uid
        except FileNotFoundError:
            return  # connect() reports it as "not running"
        except OSError as exc:
            raise TransportError(f"cannot access {self.socket_path}: {exc}") from None
        if owner != os.getuid():
            raise TransportError(f"{self.socket_path} belongs to uid {owner}, not to you ({os.getuid()}): refusing it")

    def _encode(self, msgid: int, method: str, params: dict[str, Any]) -> bytes:
        if self.framing == "msgpack":
            return bytes(msgpack.packb([REQUEST, msgid, method, params], use_bin_type=True))
        return encode_json({"id": msgid, "method": method, "params": params})

    def _read_reply(self, sock: socket.socket) -> tuple[Any, Any]:
        """(error, result) of the reply to the request just sent."""
        while True:
            reply = self._next_message()
            if reply is not None:
                return reply
            chunk = sock.recv(65536)
            if not chunk:
                self.close()
                raise TransportError(CLOSED)
            if self._unpacker is not None:
                self._unpacker.feed(chunk)
            else:
                self._buf += chunk

    def _next_message(self) -> tuple[Any, Any] | None:
        if self._unpacker is not None:
            for msg in self._unpacker:
                if isinstance(msg, list) and len(msg) == 4 and msg[0] == RESPONSE and msg[1] in (self._msgid, None):
                    return msg[2], msg[3]
            return None
        while (newline := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:newline])
            del self._buf[: newline + 1]
            msg = json.loads(line)
            if "method" in msg:
                continue  # a notification (after subscribe), not a reply
            if msg.get("id") == self._msgid or msg.get("id") is None:
                return msg.get("error"), msg.get("result")
        return None
