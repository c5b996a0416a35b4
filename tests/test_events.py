"""Progress without polling: the event hub, and subscriptions on a real socket to a real Service."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import structlog

from semdexd.server.events import Event, EventHub, Mailbox, Publisher
from semdexd.server import Server
from tests.support import Instance, wait_for
from tests.test_server import Raw

# ---------------------------------------------------------------- hub


def test_mailbox_coalesces_progress_and_drops_oldest() -> None:
    box = Mailbox(frozenset({"progress", "state"}), capacity=3)
    for i in range(5):
        box.put(Event("progress", {"n": i}))
    assert box.get(0) == Event("progress", {"n": 4}), "only the latest progress is kept"
    for i in range(5):
        box.put(Event("state", {"n": i}))
    assert [box.get(0).payload["n"] for _ in range(3)] == [2, 3, 4]  # type: ignore[union-attr]
    assert box.dropped == 6 and box.get(0) is None
    box.close()
    assert box.get() is None


def test_publish_never_waits_for_a_subscriber_that_does_not_read() -> None:
    hub = EventHub()
    stuck = hub.subscribe()
    only_state = hub.subscribe(frozenset({"state"}))
    started = time.perf_counter()
    for i in range(20000):
        hub.publish("state" if i % 2 else "progress", {"i": i})
    elapsed = time.perf_counter() - started
    assert stuck.dropped > 19000 and only_state.dropped > 9000
    assert elapsed < 5.0  # generous: it is ~20k appends; a blocked publisher would hang here
    hub.unsubscribe(stuck)
    hub.unsubscribe(only_state)
    assert hub.subscribers == 0


def test_publisher_sends_changes_only() -> None:
    hub = EventHub()
    box = hub.subscribe()
    snaps = iter([{"state": "indexing", "files_done": 1}, {"state": "indexing", "files_done": 1},
                  {"state": "indexing", "files_done": 2}, {"state": "idle", "files_done": 2}])
    pub = Publisher(hub, lambda: next(snaps))
    for _ in range(4):
        pub.poll_once()
    kinds = []
    while (event := box.get(0)) is not None:
        kinds.append((event.kind, event.payload.get("state"), event.payload.get("files_done")))
    # progress is coalesced in the mailbox: the last one wins
    assert kinds == [("state", "indexing", None), ("state", "idle", None), ("progress", "idle", 2)]


def test_a_new_subscriber_gets_the_current_state_even_when_nothing_changes() -> None:
    hub = EventHub()
    pub = Publisher(hub, lambda: {"state": "idle", "files_done": 3})
    first = hub.subscribe()
    pub.poll_once()
    assert first.get(0) is not None
    hub.unsubscribe(first)
    second = hub.subscribe()  # nothing cached any more, and the snapshot has not changed
    pub.poll_once()
    got = [second.get(0), second.get(0)]
    assert [e.kind for e in got if e] == ["state", "progress"]


# ---------------------------------------------------------------- a real service on a socket


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_info: Any) -> Iterator[Any]:
    from semdexd.app.handlers import Api
    from semdexd.app.service import Service

    tmp = tmp_path_factory.mktemp("events")
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("Knead the dough and let it rise.\n")
    inst = Instance(tmp, [folder])
    service = Service(inst.config())
    service.start()
    wait_for(lambda: service.error or service.state() == "idle", timeout=180, what="index")
    runtime = Path(tempfile.mkdtemp(dir="/tmp", prefix="sx"))
    server = Server(runtime / "s" / "ev.sock", Api(service).handlers(), max_request_bytes=1 << 20,
                    log=structlog.get_logger("test"), hub=service.events)
    server.start()
    service.folder = folder  # type: ignore[attr-defined]
    yield server, service
    server.close()
    service.stop()
    inst.cleanup()
    shutil.rmtree(runtime, ignore_errors=True)


class Listener:
    """Collects every message of a connection in a thread (replies and notifications)."""

    def __init__(self, raw: Raw, framing: str) -> None:
        self.raw, self.framing = raw, framing
        self.messages: list[Any] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                msg = self.raw.json_reply() if self.framing == "json" else self.raw.mp_reply()
                self.messages.append(msg)
        except (AssertionError, OSError):
            return

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for m in list(self.messages):
            if self.framing == "json" and "method" in m and "id" not in m:
                out.append((m["method"], m["params"]))
            elif self.framing == "msgpack" and m[0] == 2:
                out.append((m[1], m[2][0]))
        return out


def test_subscribers_get_state_and_progress_in_both_framings(served: Any) -> None:
    server, service = served
    j = Raw(server.path)
    j.send(b'{"id": 1, "method": "subscribe", "params": {}}\n')
    assert j.json_reply() == {"id": 1, "error": None, "result": {"subscribed": True, "events": ["progress", "state"], "lua": False}}
    m = Raw(server.path)
    m.send(msgpack.packb([0, 1, "v1.subscribe", [{"events": ["progress"]}]]))
    assert m.mp_reply() == [1, 1, None, {"subscribed": True, "events": ["progress"], "lua": False}]
    jl, ml = Listener(j, "json"), Listener(m, "msgpack")
    wait_for(lambda: ("state", {"event": "state", "state": "idle", "error": None}) in jl.events(), 10, "the current state")
    before = service.progress()["files_done"]
    (service.folder / "b.md").write_text("Bake at 230 degrees until golden.\n")
    wait_for(lambda: any(e[1]["files_done"] == before + 1 and e[1]["state"] == "idle"
                         for e in ml.events() if e[0] == "progress"), 60, "progress after the new file")
    assert all(kind == "progress" for kind, _ in ml.events()), "only the events asked for"
    states = [p["state"] for kind, p in jl.events() if kind == "state"]
    assert states[0] == "idle" and states[-1] == "idle"
    # unsubscribe: the reply, and no more events; the connection goes on
    n = len(jl.events())
    j.send(b'{"id": 2, "method": "unsubscribe"}\n')
    wait_for(lambda: any(msg.get("id") == 2 for msg in jl.messages), 10, "the unsubscribe reply")
    (service.folder / "c.md").write_text("Cool on a rack.\n")
    wait_for(lambda: service.progress()["files_done"] == before + 2 and service.state() == "idle", 60, "c.md indexed")
    j.send(b'{"id": 3, "method": "status"}\n')
    wait_for(lambda: any(msg.get("id") == 3 for msg in jl.messages), 10, "status on the same connection")
    assert len(jl.events()) == n
    # disconnect unsubscribes
    m.sock.shutdown(socket.SHUT_RDWR)  # (close() alone would not end the listener's recv)
    m.close()
    wait_for(lambda: service.events.subscribers == 0, 10, "the closed subscriber to be dropped")


def test_subscribe_params_are_validated(served: Any) -> None:
    server, _ = served
    c = Raw(server.path)
    error = c.json({"id": 1, "method": "subscribe", "params": {"events": ["gossip"]}})["error"]
    assert error["code"] == "invalid_params" and "progress, state" in error["message"]
    assert c.json({"id": 2, "method": "nope"})["error"]["message"].endswith("status, subscribe, unsubscribe, version")


@pytest.mark.parametrize("framing", ["json", "msgpack"])
def test_the_client_library_skips_notifications_between_replies(served: Any, framing: str) -> None:
    from semdex_client.api import Client

    server, service = served
    with Client(server.path, timeout=30, framing=framing) as c:
        assert c.call("subscribe", events=["state", "progress"])["subscribed"] is True
        wait_for(lambda: service.events.last("progress") is not None, 10, "the first events to be published")
        for _ in range(3):
            assert c.call("version")["protocol"] == 1


def test_a_subscriber_whose_socket_is_full_blocks_nothing() -> None:
    hub = EventHub()
    runtime = Path(tempfile.mkdtemp(dir="/tmp", prefix="sx"))
    server = Server(runtime / "s" / "t.sock", {"version": lambda p: {"protocol": 1}}, max_request_bytes=1 << 20,
                    log=structlog.get_logger("test"), hub=hub)
    server.start()
    try:
        stuck = Raw(server.path)
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        assert stuck.mp([0, 1, "subscribe", [{"events": ["state"]}]])[2] is None
        big = "x" * 65536
        started = time.perf_counter()
        for i in range(300):  # ~20 MB of events: far beyond what the socket buffers hold
            hub.publish("state", {"state": "indexing", "n": i, "pad": big})
        assert time.perf_counter() - started < 5.0, "publishing waited for the subscriber"
        other = Raw(server.path)
        assert other.json({"id": 1, "method": "version"})["result"] == {"protocol": 1}
        assert hub.subscribers == 1  # still subscribed: only its old events were dropped
    finally:
        server.close()
        shutil.rmtree(runtime, ignore_errors=True)
