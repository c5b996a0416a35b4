"""Progress and state events for subscribers, without ever blocking the daemon.

`EventHub.publish(kind, payload)` hands an event to every subscriber's `Mailbox` and returns at
once: a mailbox is a small bounded queue that keeps only the latest ``progress`` event (a newer
one replaces the queued one: progress is coalesced) and drops its oldest events when full
(``dropped`` counts them). A slow or stuck subscriber therefore only loses old events; the
publisher never waits for it. While somebody is subscribed the hub remembers the last event of
each kind and gives it to a new subscriber first; the first subscriber gets fresh ones within
one interval.

`Publisher` polls a snapshot function (the service's `progress()` view) every ``interval_s``
while somebody is subscribed and publishes ``state`` when the state changed and ``progress``
when the figures changed: at most one event of each kind per interval (4 per second by
default). Lower layers (indexer, store) know nothing of it.

Kinds: ``state`` -> ``{"state": ...}``; ``progress`` -> ``{"state", "files_done", "files_total",
"files_queued", "chunks"}``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from semdexd.api.types import EVENTS

MAILBOX_CAPACITY = 16
PUBLISH_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Event:
    kind: str
    payload: dict[str, Any]


class Mailbox:
    """One subscriber's bounded queue (see the module docstring). Thread-safe."""

    def __init__(self, kinds: frozenset[str], capacity: int = MAILBOX_CAPACITY) -> None:
        self.kinds = kinds
        self._queue: deque[Event] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, event: Event) -> None:
        """Queue ``event`` (never blocks): replaces a queued event of the same kind for
        ``progress``; drops the oldest event when full."""
        if event.kind not in self.kinds:
            return
        with self._cond:
            if self._closed:
                return
            if event.kind == "progress":
                for i, queued in enumerate(self._queue):
                    if queued.kind == "progress":
                        del self._queue[i]
                        self.dropped += 1
                        break
            self._queue.append(event)
            while len(self._queue) > self._capacity:
                self._queue.popleft()
                self.dropped += 1
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The oldest queued event; None once closed (or after ``timeout`` s with nothing)."""
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout)
            if self._closed or not self._queue:
                return None
            return self._queue.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()


class EventHub:
    """Fan-out of events to mailboxes. Thread-safe; `publish` never blocks on a subscriber."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boxes: list[Mailbox] = []
        self._last: dict[str, Event] = {}
        self._refresh = False

    def subscribe(self, kinds: frozenset[str] | None = None) -> Mailbox:
        box = Mailbox(kinds or frozenset(EVENTS))
        with self._lock:
            self._boxes.append(box)
            last = [self._last[k] for k in ("state", "progress") if k in self._last]
            if len(last) < len(EVENTS):
                self._refresh = True  # nothing current to hand over: the publisher sends it
        for event in last:
            box.put(event)
        return box

    def unsubscribe(self, box: Mailbox) -> None:
        with self._lock:
            if box in self._boxes:
                self._boxes.remove(box)
            if not self._boxes:
                self._last.clear()  # not kept fresh while nobody listens
        box.close()

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        event = Event(kind, payload)
        with self._lock:
            self._last[kind] = event
            boxes = list(self._boxes)
        for box in boxes:
            box.put(event)

    def take_refresh(self) -> bool:
        """True once after a subscriber arrived that the cache could not serve."""
        with self._lock:
            wanted, self._refresh = self._refresh, False
            return wanted

    def last(self, kind: str) -> Event | None:
        """The last event of ``kind`` published while somebody listened."""
        with self._lock:
            return self._last.get(kind)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._boxes)


class Publisher:
    """Polls ``snapshot()`` and publishes changes to ``hub`` (see the module docstring)."""

    def __init__(self, hub: EventHub, snapshot: Callable[[], dict[str, Any]],
                 interval_s: float = PUBLISH_INTERVAL_S, log: Any = None) -> None:
        self._hub = hub
        self._snapshot = snapshot
        self._interval = interval_s
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, Any] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="semdexd-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def poll_once(self) -> None:
        """Take one snapshot and publish what changed (the loop's body); everything when a new
        subscriber has nothing yet."""
        if self._hub.take_refresh():
            self._last = None
        snap = self._snapshot()
        last = self._last
        if last is None or snap.get("state") != last.get("state"):
            self._hub.publish("state", {"state": snap.get("state"), "error": snap.get("error")})
        if last is None or snap != last:
            self._hub.publish("progress", snap)
        self._last = snap

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._hub.subscribers:
                continue
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a view read mid-shutdown must not end the loop
                if self._log is not None:
                    self._log.exception("event_poll_failed")
