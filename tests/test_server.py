"""The socket server on real Unix sockets: framing, errors, limits, permissions, concurrency.

Most tests run `Server` in-process on a handler map of their own (a real socket, real threads);
the last group drives a real `semdexd run` process with raw clients in both framings.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import msgpack
import pytest
import structlog

from semdexd.api.types import ApiError
from semdexd.api.rpc import encode_json, parse_rpc_error
from semdexd.server import Server, SocketInUse
from tests.support import wait_for
from tests.test_daemon import DaemonProcess

HUNDRED_MB = 100 * 1024 * 1024
MAX_BYTES = 1 << 20


class Raw:
    """A raw client: bytes in, one reply (JSON line or msgpack object) out."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(path))
        self.buf = b""
        self.unpacker = msgpack.Unpacker(raw=False)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def json(self, request: Any) -> dict[str, Any]:
        self.send(encode_json(request))
        return self.json_reply()

    def json_reply(self) -> dict[str, Any]:
        import json
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed; got {self.buf!r}"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def mp(self, message: Any) -> Any:
        self.send(msgpack.packb(message))
        return self.mp_reply()

    def mp_reply(self) -> Any:
        """The next msgpack message; a response's error ``[type, "code: message"]`` is read back
        as ``{"code", "message"}`` (the wire form is checked in test_msgpack_errors_are_what_neovim_reads)."""
        while True:
            for obj in self.unpacker:
                if isinstance(obj, list) and len(obj) == 4 and obj[0] == 1 and obj[2] is not None:
                    code, message = parse_rpc_error(obj[2])
                    obj[2] = {"code": code, "message": message}
                return obj
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed without a reply"
            self.unpacker.feed(chunk)

    def closed(self) -> bool:
        """True once the server has closed its side (EOF after any pending bytes).

        A server that closes with our unread request bytes in its queue makes Linux report
        ECONNRESET after the bytes it did send: that is a close too.
        """
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


class NumpyLike:
    def tolist(self) -> list[float]:
        return [0.5, 0.25]


def make_handlers(release: threading.Event) -> dict[str, Any]:
    def search(p: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(p["query"], str):
            raise TypeError("query must be a string")
        return {"hits": [{"path": "/x", "start_line": 1, "end_line": 2, "score": 1.0, "snippet": p["query"]}]}

    def boom(p: dict[str, Any]) -> Any:
        raise RuntimeError("kaboom")

    def refuse(p: dict[str, Any]) -> Any:
        raise ApiError("not_found", "no such file")

    return {
        "version": lambda p: {"version": "test", "protocol": 1},
        "echo": lambda p: p,
        "search": search,
        "boom": boom,
        "refuse": refuse,
        "wait": lambda p: {"released": release.wait(60)},
        "unencodable": lambda p: {"x": object()},
        "vector": lambda p: {"vectors": [NumpyLike()]},
    }


class Harness:
    def __init__(self, **kwargs: Any) -> None:
        self.runtime = Path(tempfile.mkdtemp(dir="/tmp", prefix="sx"))
        self.path = self.runtime / "semdex" / "t.sock"
        self.release = threading.Event()
        self.server = Server(self.path, make_handlers(self.release), max_request_bytes=MAX_BYTES,
                             log=structlog.get_logger("test"), **kwargs)

    def connect(self) -> Raw:
        return Raw(self.path)

    def close(self) -> None:
        self.release.set()
        self.server.close()
        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    h.server.start()
    yield h
    h.close()


# ---------------------------------------------------------------- socket


def test_socket_is_0600_in_a_0700_dir(harness: Harness) -> None:
    assert stat.S_IMODE(harness.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(harness.path.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(harness.path.stat().st_mode)
    assert not [p for p in harness.path.parent.iterdir() if p != harness.path], "no temp names left behind"


def test_stale_socket_is_replaced_live_one_and_regular_file_refused(tmp_path: Path) -> None:
    first = Harness()
    try:
        first.path.parent.mkdir(parents=True, mode=0o700)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(first.path))
        stale.close()  # the file stays: what a kill -9 leaves
        first.server.start()
        assert first.connect().json({"id": 1, "method": "version"})["result"]["version"] == "test"

        second = Server(first.path, {}, max_request_bytes=MAX_BYTES, log=structlog.get_logger("test"))
        with pytest.raises(SocketInUse, match="another semdexd"):
            second.start()
        assert first.connect().json({"id": 2, "method": "version"})["error"] is None
    finally:
        first.close()

    blocked = Harness()
    try:
        blocked.path.parent.mkdir(parents=True, mode=0o700)
        blocked.path.write_text("mine")
        with pytest.raises(SocketInUse, match="not a socket"):
            blocked.server.start()
        assert blocked.path.read_text() == "mine"
    finally:
        blocked.close()


@pytest.mark.parametrize("mode, ok", [(0o777, False), (0o1777, True), (0o755, True)])
def test_the_socket_dir_parent_must_be_safe_from_other_users(mode: int, ok: bool) -> None:
    h = Harness()
    try:
        os.chmod(h.runtime, mode)
        if ok:
            h.server.start()
            assert h.connect().json({"id": 1, "method": "version"})["error"] is None
        else:
            with pytest.raises(SocketInUse, match="another user"):
                h.server.start()
            assert not h.path.exists()
    finally:
        h.close()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to chown")
def test_a_socket_dir_parent_owned_by_another_user_is_refused() -> None:
    h = Harness()
    try:
        os.chown(h.runtime, 65534, 65534)
        with pytest.raises(SocketInUse, match="owner uid 65534"):
            h.server.start()
    finally:
        h.close()


def test_close_removes_the_socket_and_ends_connections() -> None:
    h = Harness()
    h.server.start()
    client = h.connect()
    assert client.json({"id": 1, "method": "version"})["error"] is None
    wait_for(lambda: h.server.active_connections == 1, 30, "the connection to be tracked")
    h.close()
    assert client.closed()
    assert not h.path.exists()


# ---------------------------------------------------------------- JSON lines


def test_json_requests_params_forms_and_versions(harness: Harness) -> None:
    c = harness.connect()
    assert c.json({"id": 1, "method": "version"}) == {"id": 1, "error": None, "result": {"version": "test", "protocol": 1}}
    assert c.json({"id": "a", "method": "echo", "params": {"k": "v"}})["result"] == {"k": "v"}
    assert c.json({"id": 3, "method": "echo", "params": [{"k": 1}]})["result"] == {"k": 1}
    assert c.json({"id": 4, "method": "v1.echo", "params": []})["result"] == {}
    assert c.json({"method": "version"})["id"] is None
    assert c.json({"id": 5, "method": "v2.echo"})["error"]["code"] == "unknown_method"
    assert c.json({"id": 6, "method": "nope"})["error"]["code"] == "unknown_method"
    assert c.json({"id": 7, "method": "similar"})["error"]["code"] == "unknown_method"  # not in this handler map
    assert c.json({"id": 8, "method": 42})["error"]["code"] == "bad_request"
    assert c.json({"id": 9, "method": "echo", "params": [1, 2]})["error"]["code"] == "bad_request"
    assert c.json({"id": 10, "method": "echo", "params": "x"})["error"]["code"] == "bad_request"


def test_json_bad_lines_get_errors_and_the_connection_goes_on(harness: Harness) -> None:
    c = harness.connect()
    c.send(b"{not json\n")
    assert c.json_reply()["error"]["code"] == "bad_request"
    c.send(b'{"id": 1, "method": "version"}\n')
    assert c.json_reply()["result"]["protocol"] == 1
    c.send(b"[1, 2, 3]\n\xff\xfe\n")
    assert c.json_reply()["error"]["code"] == "bad_request"
    assert c.json_reply()["error"]["code"] == "bad_request"
    assert c.json({"id": 2, "method": "version"})["id"] == 2


def test_json_unterminated_last_line_is_answered_at_eof(harness: Harness) -> None:
    c = harness.connect()
    c.send(b'\n  \n{"id": 7, "method": "version"}')
    c.sock.shutdown(socket.SHUT_WR)
    assert c.json_reply()["id"] == 7
    assert c.closed()


def test_handler_failures_become_error_codes_and_serving_goes_on(harness: Harness) -> None:
    c = harness.connect()
    assert c.json({"id": 1, "method": "search", "params": {"query": 5}})["error"] == {
        "code": "bad_request", "message": "search: query must be a string"}
    missing = c.json({"id": 2, "method": "search", "params": {}})["error"]
    assert missing["code"] == "bad_request" and "query" in missing["message"]
    internal = c.json({"id": 3, "method": "boom"})["error"]
    assert internal["code"] == "internal" and "kaboom" in internal["message"]
    assert c.json({"id": 4, "method": "refuse"})["error"] == {"code": "not_found", "message": "no such file"}
    assert c.json({"id": 5, "method": "unencodable"})["error"]["code"] == "internal"
    assert c.json({"id": 6, "method": "vector"})["result"] == {"vectors": [[0.5, 0.25]]}
    assert c.json({"id": 7, "method": "search", "params": {"query": "ok"}})["result"]["hits"][0]["snippet"] == "ok"


# ---------------------------------------------------------------- msgpack-rpc


def test_msgpack_requests_neovim_params_and_notifications(harness: Harness) -> None:
    c = harness.connect()
    assert c.mp([0, 1, "version", []]) == [1, 1, None, {"version": "test", "protocol": 1}]
    assert c.mp([0, 2, "echo", [{"query": "x", "limit": 3}]]) == [1, 2, None, {"query": "x", "limit": 3}]
    assert c.mp([0, 3, "v1.echo", {"a": 1}]) == [1, 3, None, {"a": 1}]
    # a notification and a stray response get no reply: the next reply is the next request's
    c.send(msgpack.packb([2, "echo", [{}]]) + msgpack.packb([1, 9, None, None]))
    assert c.mp([0, 4, "version", []])[1] == 4
    reply = c.mp([0, 5, "nope", []])
    assert reply[0] == 1 and reply[2]["code"] == "unknown_method" and reply[3] is None
    assert c.mp([0, 6, "search", [{"query": 1}]])[2]["code"] == "bad_request"
    assert c.mp([0, 7, "boom", []])[2]["code"] == "internal"
    assert c.mp({"not": "rpc"})[2]["code"] == "bad_request"  # well-formed msgpack: the stream goes on
    assert c.mp([0, "id", "version", []])[2]["code"] == "bad_request"
    assert c.mp([0, 8, "version", []])[1] == 8


def test_msgpack_errors_are_what_neovim_reads(harness: Harness) -> None:
    c = harness.connect()
    c.send(msgpack.packb([0, 1, "refuse", []]) + msgpack.packb([0, 2, "boom", []]))
    raw = msgpack.Unpacker(raw=False)
    got: list[Any] = []
    while len(got) < 2:
        raw.feed(c.sock.recv(65536))
        got += list(raw)
    assert got[0] == [1, 1, [1, "not_found: no such file"], None]  # [Validation, "code: message"]
    assert got[1][2][0] == 0 and got[1][2][1].startswith("internal: boom failed (RuntimeError: kaboom)")


def test_msgpack_truncated_message_gets_an_error_then_close(harness: Harness) -> None:
    c = harness.connect()
    whole = msgpack.packb([0, 1, "echo", [{"text": "x" * 100}]])
    c.send(whole[: len(whole) // 2])
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.mp_reply()
    assert reply[2]["code"] == "bad_request" and "truncated" in reply[2]["message"]
    assert c.closed()


def test_msgpack_corrupt_bytes_get_an_error_then_close(harness: Harness) -> None:
    c = harness.connect()
    c.send(b"\x94\x00\x01\xc1\xc1")  # 0xc1 is never valid msgpack
    reply = c.mp_reply()
    assert reply[2]["code"] == "bad_request" and "malformed" in reply[2]["message"]
    assert c.closed()


def test_garbage_first_bytes_get_a_json_error_then_close(harness: Harness) -> None:
    for garbage in (b"\x00\x01\x02garbage", b"GET / HTTP/1.1\r\n\r\n", b"\xff" * 10):
        c = harness.connect()
        c.send(garbage)
        reply = c.json_reply()
        assert reply["error"]["code"] == "bad_request" and "unrecognised framing" in reply["error"]["message"]
        assert c.closed()
    assert harness.connect().json({"id": 1, "method": "version"})["error"] is None


# ---------------------------------------------------------------- limits


def stream_huge(path: Path, head: bytes) -> dict[str, Any]:
    """Send ``head`` then up to 100 MB of payload; stop when the server closes. Returns what happened."""
    out: dict[str, Any] = {"sent": 0}
    raw = Raw(path)
    chunk = b"a" * (1 << 20)
    try:
        raw.send(head)
        while out["sent"] < HUNDRED_MB:
            raw.send(chunk)
            out["sent"] += len(chunk)
    except OSError as exc:  # EPIPE / ECONNRESET once the server has closed
        out["send_error"] = exc
    out["raw"] = raw
    return out


HUGE_HEADS = {
    "json": b'{"id": 1, "method": "search", "params": {"query": "',
    "msgpack": b"\x94\x00\x01" + msgpack.packb("search") + b"\x81" + msgpack.packb("query")
               + b"\xdb" + HUNDRED_MB.to_bytes(4, "big"),
}


def check_huge_frame_refused(path: Path, framing: str) -> None:
    result: dict[str, Any] = {}
    sender = threading.Thread(target=lambda: result.update(stream_huge(path, HUGE_HEADS[framing])))
    sender.start()
    other = Raw(path)  # meanwhile another client is served
    assert other.json({"id": 1, "method": "version"})["error"] is None
    sender.join(120)
    assert not sender.is_alive()
    assert result["sent"] < HUNDRED_MB, "the server must not read the whole frame"
    raw: Raw = result["raw"]
    reply = raw.json_reply() if framing == "json" else raw.mp_reply()
    error = reply["error"] if framing == "json" else reply[2]
    assert error["code"] == "too_large"
    assert raw.closed()
    assert other.json({"id": 2, "method": "version"})["error"] is None


@pytest.mark.parametrize("framing", ["json", "msgpack"])
def test_a_100_mb_frame_gets_too_large_and_close(harness: Harness, framing: str) -> None:
    check_huge_frame_refused(harness.path, framing)


def test_a_slow_call_does_not_block_other_connections(harness: Harness) -> None:
    slow = harness.connect()
    slow.send(encode_json({"id": 1, "method": "wait"}))
    fast = harness.connect()
    assert fast.json({"id": 2, "method": "version"})["error"] is None  # while "wait" still runs
    harness.release.set()
    assert slow.json_reply()["result"] == {"released": True}


def test_many_concurrent_clients_in_both_framings(harness: Harness) -> None:
    failures: list[str] = []

    def client(n: int) -> None:
        try:
            c = harness.connect()
            for i in range(25):
                if n % 2:
                    reply = c.mp([0, i, "echo", [{"n": n, "i": i}]])
                    ok = reply == [1, i, None, {"n": n, "i": i}]
                else:
                    ok = c.json({"id": i, "method": "echo", "params": {"n": n, "i": i}})["result"] == {"n": n, "i": i}
                if not ok:
                    failures.append(f"client {n} call {i}")
            c.close()
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            failures.append(f"client {n}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures


def test_full_slots_evict_the_longest_idle_connection() -> None:
    h = Harness(max_connections=2)
    h.server.start()
    try:
        a = h.connect()
        assert a.json({"id": 1, "method": "version"})["error"] is None
        b = h.connect()
        wait_for(lambda: h.server.active_connections == 2, 30, "two connections to be admitted")
        extra = h.connect()
        assert extra.json({"id": 2, "method": "version"})["error"] is None, "room was made"
        assert a.closed(), "a was idle the longest"
        b.send(b'{"id": 3, "method": "version"}\n')
        assert b.json_reply()["id"] == 3
    finally:
        h.close()


def test_busy_connections_are_not_evicted() -> None:
    h = Harness(max_connections=2)
    h.server.start()
    try:
        a, b = h.connect(), h.connect()
        a.send(encode_json({"id": 1, "method": "wait"}))
        b.send(b'{"id": 2, "method": "ech')  # mid-request
        wait_for(lambda: h.server.active_connections == 2, 30, "two connections to be admitted")
        assert h.connect().closed(), "both are busy: the new connection is refused"
        h.release.set()
        assert a.json_reply()["result"] == {"released": True}
    finally:
        h.close()


def test_silent_half_sent_and_idle_connections_time_out() -> None:
    h = Harness(request_timeout_s=0.5, idle_timeout_s=1.0)
    h.server.start()
    try:
        silent = h.connect()
        half_json, half_mp = h.connect(), h.connect()
        half_json.send(b'{"id": 1, "method": "vers')
        half_mp.send(b"\x94\x00\x01")
        idle = h.connect()
        assert idle.json({"id": 1, "method": "version"})["error"] is None
        assert silent.closed() and silent.buf == b"", "closed without a word: it sent nothing"
        reply = half_json.json_reply()
        assert reply["error"]["code"] == "bad_request" and "incomplete" in reply["error"]["message"]
        assert half_json.closed()
        assert half_mp.mp_reply()[2]["code"] == "bad_request" and half_mp.closed()
        assert idle.closed()
        wait_for(lambda: h.server.active_connections == 0, 30, "every slot to free up")
    finally:
        h.close()


def test_a_peer_with_another_uid_is_refused() -> None:
    h = Harness(allowed_uid=os.getuid() + 1)
    h.server.start()
    try:
        c = h.connect()
        try:
            c.send(encode_json({"id": 1, "method": "version"}))
        except BrokenPipeError:
            pass  # already closed: fine
        assert c.closed() and c.buf == b"", "no reply to a stranger"
    finally:
        h.close()


STRANGER = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"id": 1, "method": "version"}\\n')
    print(repr(s.recv(100)))
except (BrokenPipeError, ConnectionResetError):  # closed before or after our request
    print("reset")
"""


def _world_executable(path: Path) -> bool:
    """Can any user run ``path`` (every directory on the way searchable)?"""
    real = path.resolve()
    return bool(real.stat().st_mode & 0o001) and all(p.stat().st_mode & 0o001 for p in real.parents)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another user")
def test_a_real_process_of_another_user_is_refused() -> None:
    h = Harness()
    h.server.start()
    try:  # open the permissions wide so that only the uid check stands in the way
        for p in (h.runtime, h.path.parent):
            os.chmod(p, 0o755)
        os.chmod(h.path, 0o666)
        code = STRANGER
        python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable)
                       if os.access(p, os.X_OK) and _world_executable(Path(p))), None)
        if python is None:
            pytest.skip("no python that another user may run")
        result = subprocess.run([python, "-I", "-c", code, str(h.path)], user=65534, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() in ("b''", "reset"), "closed without a reply"
        assert h.connect().json({"id": 1, "method": "version"})["error"] is None, "our own uid is served"
    finally:
        h.close()


# ---------------------------------------------------------------- the real daemon


def test_daemon_socket_permissions(live: DaemonProcess) -> None:
    assert stat.S_IMODE(live.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(live.socket.parent.stat().st_mode) == 0o700


def test_daemon_answers_both_framings(live: DaemonProcess) -> None:
    assert Raw(live.socket).json({"id": 1, "method": "v1.version"})["result"]["protocol"] == 1
    reply = Raw(live.socket).mp([0, 1, "status", [{}]])
    assert reply[2] is None and {"state", "files_indexed", "files_failed", "files_queued", "chunks"} <= set(reply[3])


@pytest.mark.parametrize("bad", [
    b"\x00\x01garbage\n",
    b"\x94\x00\x01\xa6sea",  # truncated msgpack (then EOF)
    encode_json({"id": 1, "method": "no_such_method"}),
    encode_json({"id": 1, "method": "search", "params": {"query": 12}}),
    msgpack.packb([0, 1, "search", [{"query": ["not", "a", "string"]}]]),
    msgpack.packb([0, 1, "embed", [{"texts": [1, 2]}]]),
])
def test_daemon_errors_on_bad_input_while_others_are_served(live: DaemonProcess, bad: bytes) -> None:
    other = Raw(live.socket)
    c = Raw(live.socket)
    c.send(bad)
    c.sock.shutdown(socket.SHUT_WR)
    assert other.json({"id": 1, "method": "status"})["error"] is None
    reply = c.mp_reply() if bad[0] != ord("{") and bad[0] >= 0x90 else c.json_reply()
    error = reply[2] if isinstance(reply, list) else reply["error"]
    assert error["code"] in ("bad_request", "unknown_method", "invalid_params"), error
    assert Raw(live.socket).mp([0, 2, "version", []])[2] is None
    assert live.proc.poll() is None


@pytest.mark.parametrize("framing", ["json", "msgpack"])
def test_daemon_refuses_a_100_mb_frame(live: DaemonProcess, framing: str) -> None:
    check_huge_frame_refused(live.socket, framing)
    assert live.answers()


def test_silent_and_half_sent_connections_cannot_lock_the_cli_out(live: DaemonProcess) -> None:
    from tests.test_daemon import command

    hogs = [Raw(live.socket) for _ in range(72)]  # beyond max_connections (64)
    try:
        for i, hog in enumerate(hogs):
            if i % 2:
                hog.send(b'{"id": 1, "method": "sta')  # half a line, never finished
        env = {**live.env, "NO_COLOR": "1"}
        started = time.monotonic()
        cli = subprocess.run([*command("semdex"), "status", "--json", "--timeout", "10", "--socket", str(live.socket)],
                             env=env, capture_output=True, text=True, timeout=60)
        assert cli.returncode in (0, 4), cli.stderr  # 4: this daemon has no model (state error)
        assert json.loads(cli.stdout)["state"] == "error", "the daemon answered"
        assert time.monotonic() - started < 10
    finally:
        for hog in hogs:
            hog.close()


@pytest.mark.parametrize("bad,code", [
    (b'{"id": 1, "method": "search", "params": ' + b"[" * 1000 + b"]" * 1000 + b"}\n", "bad_request"),
    (b'{"id": 1, "method": "search", "params": {"query": "x", "type": [1, 2]}}\n', "invalid_params"),
    (b'{"id": 1, "method": "search", "params": {"query": "x", "since": 1e308}}\n', "invalid_params"),
    (b'{"id": 1, "method": "search", "params": {"query": "x", "since": ' + str(10**30).encode() + b"}}\n",
     "invalid_params"),
    (msgpack.packb([0, 1, "search", [{"query": "x", "since": 1e308}]]), "invalid_params"),
    (bytes.fromhex("93"), "bad_request"),
    (bytes.fromhex("940001dbffffffff"), "bad_request"),
    (bytes.fromhex("dcffff"), "bad_request"),
])
def test_protocol_edges_get_exactly_one_error_reply(live: DaemonProcess, bad: bytes, code: str) -> None:
    c = Raw(live.socket)
    c.send(bad)
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.json_reply() if bad[:1] == b"{" else c.mp_reply()
    error = reply["error"] if isinstance(reply, dict) else reply[2]
    assert error["code"] == code, error
    assert c.closed() and c.buf == b"", "one reply, then the connection ends"
    assert Raw(live.socket).json({"id": 2, "method": "version"})["error"] is None
