"""The broker: one thread that composes the `Scheduler` (queues), the `Supervisor` (processes)
and the `Wire` (sockets). Workers ask for work when idle.

Contract:
* A batch goes only to an idle worker (one that sent ``ready``, ``result`` or ``error`` and has
  nothing in flight), priority batches (queries) first, with a deadline of ``batch_timeout_s``.
* The broker keeps every batch until its result arrives. A batch whose worker is lost (exited,
  silent, past the deadline, restarted holding it) goes back to the scheduler (`Scheduler.lost`:
  redo, split, or fail the poison text); one the worker never computed (busy, result lost) is
  re-queued as is. The supervisor replaces the worker.
* `close` fails whatever is pending ("pool closed"), stops the workers (SIGKILL after a grace
  period) and removes the ipc file. Workers also die by themselves if this process dies.

Only the broker thread touches the sockets and the worker table; other threads talk to it through
`submit`/`cancel`/`close` (a locked inbox plus a wake-up pipe) and read `snapshot`.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
import zmq

from semdexd.config import Config
from semdexd.embed import frames as p
from semdexd.embed.jobs import Batch, Job
from semdexd.embed.memory import trim
from semdexd.embed.model import ModelInfo
from semdexd.embed.procs import spawn_worker
from semdexd.embed.scheduler import Scheduler
from semdexd.embed.slots import Slot, SlotState
from semdexd.embed.supervisor import Supervisor
from semdexd.embed.wire import Wire

COUNTERS = ("texts", "tokens", "padded", "restarts", "crashes", "retired", "requeued", "splits", "failed",
            "batches", "deadlines", "parks", "unparks")


class Broker:
    """The pool's broker thread (see the module docstring for the contract)."""

    def __init__(self, cfg: Config, info: ModelInfo, endpoint: str,
                 spawn: Callable[[str, str], subprocess.Popen[bytes]] | None = None) -> None:
        self.cfg = cfg
        self.info = info
        self.endpoint = endpoint
        self.log = structlog.get_logger()
        self.counters = collections.Counter[str]()
        self.wire = Wire(cfg, endpoint)
        self.scheduler = Scheduler(self.counters, self._publish)
        workers = cfg.worker_count(info.footprint)
        self.supervisor = Supervisor(cfg, workers, endpoint, spawn or (lambda ep, ident: spawn_worker(cfg, info, ep, ident)),
                                     self._send, self.scheduler.lost, self.counters)
        self._lock = threading.Lock()
        self._inbox: list[tuple[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._closing = False
        self._beat = cfg.pool.heartbeat_ms / 1000
        self._last_ping = 0.0
        self._snapshot: dict[str, Any] = {}

    @property
    def slots(self) -> list[Slot]:
        return self.supervisor.slots

    # ------------------------------------------------------------ other threads

    def start(self) -> None:
        """Bind the sockets and start the thread (workers start from the thread).
        ValueError for an unusable remote endpoint configuration."""
        self.wire.open()
        assert self.wire.local is not None
        self.supervisor.attach(self.wire.local)
        self._publish()
        self._thread = threading.Thread(target=self._run, name="embed-broker", daemon=True)
        self._thread.start()

    def submit(self, batches: list[Batch]) -> None:
        """Queue ``batches`` (their job is completed by this thread)."""
        self._post("submit", batches)

    def cancel(self, job: Job) -> None:
        """Drop the queued batches of ``job`` (in-flight results will be ignored by the job)."""
        self._post("cancel", job)

    def close(self, timeout: float = 15.0) -> None:
        """Fail pending work, stop the workers, join the thread."""
        with self._lock:
            self._closing = True
        self.wire.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> dict[str, Any]:
        """Counters and worker table as of the broker's last loop turn (JSON-able copy)."""
        with self._lock:
            return dict(self._snapshot)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _post(self, kind: str, value: Any) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError("pool closed")
            self._inbox.append((kind, value))
        self.wire.wake()

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            while True:
                busy = self.supervisor.busy() or self.scheduler.pending()
                ready = self.wire.poll(50 if busy else min(500, int(self._beat * 500)))
                if self._take_inbox():
                    break
                for sock in ready:
                    for identity, message in self.wire.messages(sock):
                        self._on_message(sock, identity, message)
                self._housekeeping()
                self._dispatch()
                self._publish()
        except Exception:
            self.log.exception("embed_broker_crashed")
        finally:
            self._shutdown()

    def _take_inbox(self) -> bool:
        """Apply posted commands; True when closing."""
        with self._lock:
            inbox, self._inbox = self._inbox, []
            closing = self._closing
        for kind, value in inbox:
            if kind == "submit":
                self.scheduler.submit(value)
                self.supervisor.demand()
            elif kind == "cancel":
                self.scheduler.cancel(value)
        return closing

    def _housekeeping(self) -> None:
        parked = self.supervisor.parked
        reason = self.supervisor.housekeeping(self.scheduler.pending())
        if reason:
            self.scheduler.fail_all(reason)
        if self.supervisor.parked and not parked:
            trim()  # idle from now on: hand the heap that the busy time grew back to the OS
        now = time.monotonic()
        if now - self._last_ping >= self._beat:
            self._last_ping = now
            self.supervisor.ping()

    def _dispatch(self) -> None:
        """Pair idle workers with queued batches."""
        for slot in self.supervisor.idle_slots():
            batch = self.scheduler.next_batch()
            if batch is None:
                return
            if not self._send(slot, p.pack(p.BATCH, id=batch.id, texts=batch.texts)):
                self.scheduler.put_back(batch)
                self.supervisor.unreachable(slot)
                continue
            slot.batch, slot.deadline = batch, time.monotonic() + self.cfg.pool.batch_timeout_s
            slot.move(SlotState.BUSY)

    def _send(self, slot: Slot, frame: bytes) -> bool:
        return self.wire.reply(slot.sock, slot.identity, frame)

    # ------------------------------------------------------------ messages

    def _on_message(self, sock: zmq.Socket[bytes], identity: bytes, message: dict[str, Any]) -> None:
        slot = self.supervisor.find(identity)
        if slot is not None and slot.sock is not sock:
            return  # an identity reused on the other endpoint: not that worker
        if slot is None and sock is self.wire.remote and message["t"] == p.READY:
            slot = self.supervisor.join_remote(sock, identity)
        if slot is None:
            if message["t"] != p.BYE:
                self.wire.reply(sock, identity, p.pack(p.STOP))
            return
        slot.last_seen = time.monotonic()
        if isinstance(message.get("rss"), (int, float)):
            slot.rss_mb = float(message["rss"])
        kind = message["t"]
        if kind == p.READY:
            self._on_ready(slot, message)
        elif kind == p.RESULT:
            self._on_result(slot, message)
        elif kind == p.ERROR:
            self._on_error(slot, message)
        elif kind == p.HEARTBEAT:
            self._on_heartbeat(slot, message)
        elif kind == p.BYE and slot.remote:
            self.supervisor.gone(slot, f"left: {message.get('reason')}")

    def _on_ready(self, slot: Slot, message: dict[str, Any]) -> None:
        if message.get("model_id") != self.info.model_id:
            self.log.error("embed_worker_wrong_model", worker=slot.identity.decode(), model=message.get("model_id"))
            self.supervisor.kill(slot, "wrong model")
            return
        if slot.state is SlotState.GONE:
            return  # already declared unreachable: housekeeping replaces it
        self.supervisor.ready(slot, int(message.get("pid") or 0))
        self.log.info("embed_worker_ready", worker=slot.identity.decode(), pid=slot.pid)

    def _take_batch(self, slot: Slot, message: dict[str, Any]) -> Batch | None:
        """The slot's in-flight batch if ``message`` answers it (the slot no longer holds it)."""
        if isinstance(message.get("texts"), int):
            slot.total_texts += message["texts"] - slot.texts
            slot.texts = message["texts"]
        batch = slot.batch
        if batch is None or batch.id != message.get("id"):
            return None  # answered an old batch: the current one, if any, is still owed
        slot.batch = None
        return batch

    def _on_result(self, slot: Slot, message: dict[str, Any]) -> None:
        batch = self._take_batch(slot, message)
        if batch is not None:
            try:
                vectors = p.vectors_from_bytes(message.get("vec", b""), batch.size, self.info.dim)
            except p.ProtocolError as exc:
                self.scheduler.refused(batch, f"bad result: {exc}")
            else:
                self.counters["texts"] += batch.size
                self.counters["tokens"] += int(message.get("tokens") or 0)
                self.counters["padded"] += int(message.get("padded") or 0)
                self._publish()  # a caller woken by this delivery sees stats that include it
                batch.job.deliver(batch.positions, list(vectors))
        self._settle(slot)

    def _on_error(self, slot: Slot, message: dict[str, Any]) -> None:
        if message.get("busy"):
            # The worker is still on an earlier batch (its answer will come): not this batch's fault.
            if slot.batch is not None and slot.batch.id == message.get("id"):
                self.scheduler.requeue(slot.batch)
                slot.batch = None
            return
        batch = self._take_batch(slot, message)
        if batch is not None:
            self.scheduler.refused(batch, str(message.get("msg") or "unknown error"))
        self._settle(slot)

    def _on_heartbeat(self, slot: Slot, message: dict[str, Any]) -> None:
        batch = slot.batch
        if batch is not None and not message.get("busy") and message.get("seen") == batch.id:
            # The worker took the batch and finished it, but its answer never arrived.
            self.log.warning("embed_result_lost", worker=slot.identity.decode(), batch=batch.id)
            slot.batch = None
            self.scheduler.requeue(batch)
            self._settle(slot)

    def _settle(self, slot: Slot) -> None:
        """After an answer: a busy slot with nothing owed is idle again (or retired)."""
        if slot.batch is None and slot.state is SlotState.BUSY:
            self.supervisor.after_batch(slot)

    # ------------------------------------------------------------ stats and shutdown

    def _publish(self) -> None:
        snapshot = {
            "workers": [s.to_stats() for s in self.slots],
            "queued": self.scheduler.queued_texts(),
            "queued_batches": self.scheduler.queued_batches(),
            "in_flight": sum(s.batch.size for s in self.slots if s.batch),
            "parked": self.supervisor.parked,
            **{k: self.counters[k] for k in COUNTERS},
        }
        with self._lock:
            self._snapshot = snapshot

    def _shutdown(self) -> None:
        """Fail everything pending, stop the workers, release sockets, pipe and ipc file."""
        with self._lock:
            self._closing = True
            inbox, self._inbox = self._inbox, []
        for kind, value in inbox:
            if kind == "submit":
                self.scheduler.submit(value)
        self.scheduler.fail_all("failed: pool closed")
        for batch in self.supervisor.stop_all():
            batch.job.fail(batch.positions, "failed: pool closed", transient=True)
        self._publish()
        self.wire.close()
        self.log.info("embed_pool_closed", **{k: self.counters[k] for k in ("texts", "restarts", "failed")})
