"""The socket API: a private Unix socket speaking msgpack-rpc and JSON lines (docs/protocol.md).

`Server(path, handlers, max_request_bytes=..., log=...)` serves a map of method name ->
callable(params) on ``path``; `SocketInUse` means another live daemon already serves there.
"""

from semdexd.server.listener import Server
from semdexd.server.sockets import SocketInUse

__all__ = ["Server", "SocketInUse"]
