"""Property tests of the socket protocol against a real `semdexd run` (hypothesis).

For any request in either framing, with any method and any params, the daemon replies exactly
once, with a result or an error whose code is documented and is never ``internal``; for any
bytes, it never crashes and keeps serving. The daemon has no model (state ``error``): every
param still goes through the real validation before a handler would need the index.
"""

from __future__ import annotations

import json
import math
import socket
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semdexd.api.schema import all_schemas
from semdexd.api.types import METHODS
from semdexd.api.rpc import ERROR_CODES, encode_json, parse_rpc_error
from tests.test_daemon import DaemonProcess

WIRE_NAMES = sorted({name for s in all_schemas().values() for name in s["properties"]})
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats() | st.text(max_size=40) | st.sampled_from(["", ".", "rel/x", "/abs", "~/h", "hybrid", "py"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
params_dicts = st.dictionaries(st.sampled_from(WIRE_NAMES) | st.text(max_size=10), values, max_size=6)
params = params_dicts | params_dicts.map(lambda d: [d]) | values
methods = st.sampled_from(sorted(METHODS)) | st.sampled_from([f"v1.{m}" for m in METHODS]) | st.text(max_size=12) | values


class Conversation:
    """One connection; `call` returns the reply to its request, skipping notifications."""

    def __init__(self, path: Any, framing: str) -> None:
        self.path, self.framing = path, framing
        self.sock: socket.socket | None = None
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.buf = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(str(self.path))
            self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
            self.buf = b""
        return self.sock

    def call(self, msgid: int, method: Any, params: Any) -> tuple[Any, Any]:
        sock = self._connect()
        if self.framing == "json":
            sock.sendall(encode_json({"id": msgid, "method": method, "params": params}))
        else:
            sock.sendall(msgpack.packb([0, msgid, method, params], use_bin_type=True))
        return self._reply(msgid)

    def _reply(self, msgid: int) -> tuple[Any, Any]:
        assert self.sock is not None
        while True:
            for msg in self._messages():
                if self.framing == "json":
                    if "method" in msg and "id" not in msg:
                        continue  # a notification (after a valid subscribe)
                    assert msg["id"] == msgid, f"reply to another request: {msg}"
                    return msg["error"], msg["result"]
                if msg[0] == 2:
                    continue
                assert msg[0] == 1 and msg[1] == msgid, f"reply to another request: {msg}"
                return (None if msg[2] is None else dict(zip(("code", "message"), parse_rpc_error(msg[2])))), msg[3]
            chunk = self.sock.recv(65536)
            assert chunk, "the daemon closed the connection without a reply"
            if self.framing == "json":
                self.buf += chunk
            else:
                self.unpacker.feed(chunk)

    def _messages(self) -> list[Any]:
        if self.framing == "msgpack":
            return list(self.unpacker)
        out = []
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            out.append(json.loads(line))
        return out


def json_safe(x: Any) -> bool:
    """JSON cannot carry NaN/Infinity portably; Python's json emits them, which is fine, but
    dict keys must be strings (they are) and huge ints are fine too."""
    return not (isinstance(x, float) and math.isnan(x))


@pytest.mark.parametrize("framing", ["json", "msgpack"])
def test_any_request_gets_exactly_one_documented_reply(live: DaemonProcess, framing: str) -> None:
    conv = Conversation(live.socket, framing)
    counter = iter(range(1, 10**9))

    @SETTINGS
    @given(method=methods, params=params)
    def check(method: Any, params: Any) -> None:
        msgid = next(counter)
        err, _result = conv.call(msgid, method, params)
        if err is not None:
            assert err["code"] in ERROR_CODES and err["code"] != "internal", err
            assert isinstance(err["message"], str) and err["message"]
        # exactly once: the next reply on this connection is the next request's
        ping = next(counter)
        assert conv.call(ping, "version", {})[0] is None

    check()


@SETTINGS
@given(data=st.binary(max_size=200))
def test_any_bytes_leave_the_daemon_serving(live: DaemonProcess, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(live.socket))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        except (BrokenPipeError, ConnectionResetError):
            received = b""
    assert b"internal" not in received, received
    probe = Conversation(live.socket, "json")
    assert probe.call(1, "version", {})[0] is None
    probe.sock.close()  # type: ignore[union-attr]
