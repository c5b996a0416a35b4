"""The broker: one thread, one ZeroMQ ROUTER, workers that ask for work when idle.

Contract:
* A batch goes only to an idle worker (one that sent ``ready``, ``result`` or ``error`` and has
  nothing in flight). Priority batches (queries) leave before bulk batches.
* The broker keeps every batch until its result arrives. When a worker dies (its process exits),
  falls silent for ``heartbeat_ms * heartbeat_misses``, or reports in a heartbeat that it has no
  result for the batch it received, the batch goes back to the front of its queue and the worker
  is replaced. A batch in flight during two worker deaths is split in halves (which inherit the
  count), so a poison text ends alone and is then reported as an `EmbedFailure`; every other text
  still gets its vector. A batch that raises in the worker is split at once; a single text that
  raises fails with the worker's message.
* A worker that has embedded ``max_texts_per_worker`` texts or grown past ``max_worker_rss_mb``
  is replaced between batches (never while a batch is in flight): it gets ``stop`` when idle and
  its successor starts at once.
* Workers that cannot start are retried with exponential backoff (up to 30 s); after 3 failed
  starts in a row on every slot, queued work fails with a reason instead of waiting forever.
* `close` fails whatever is pending ("pool closed"), stops the workers (SIGKILL after a grace
  period) and removes the ipc file. Workers also die by themselves if this process dies.

Only the broker thread touches the sockets and the worker table; other threads talk to it through
`submit`/`cancel`/`close` (a locked inbox plus a wake-up pipe) and read `snapshot`.
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import structlog
import zmq

from semdexd.config import Config
from semdexd.embed import protocol as p
from semdexd.embed.jobs import Batch, Job
from semdexd.embed.model import ModelInfo
from semdexd.embed.procs import heartbeat_misses, heartbeat_ms, spawn_worker

START_TIMEOUT_S = 120.0       # a worker must load the model and say ready within this
STOP_GRACE_S = 5.0            # a stopped worker must exit within this, else SIGKILL
MAX_BACKOFF_S = 30.0
FAILED_STARTS_LIMIT = 3


@dataclass(eq=False)
class Slot:
    """One place for a worker: local slots respawn their process, remote slots come and go."""

    index: int
    remote: bool = False
    sock: zmq.Socket | None = None  # the ROUTER this worker is connected to
    proc: subprocess.Popen[bytes] | None = None
    identity: bytes = b""
    pid: int = 0
    state: str = "empty"          # empty | starting | idle | busy | gone
    batch: Batch | None = None
    texts: int = 0                # embedded by the current process
    total_texts: int = 0
    restarts: int = 0
    rss_mb: float = 0.0
    last_seen: float = 0.0
    failures: int = 0             # consecutive failed starts
    retry_at: float = 0.0
    last_exit: str = ""

    def to_stats(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": self.state, "rss_mb": self.rss_mb, "texts": self.total_texts,
                "restarts": self.restarts, "remote": self.remote}


class Broker:
    """The pool's scheduler thread (see the module docstring for the contract)."""

    def __init__(self, cfg: Config, info: ModelInfo, endpoint: str,
                 spawn: Callable[[str, str], subprocess.Popen[bytes]] | None = None) -> None:
        self.cfg = cfg
        self.info = info
        self.endpoint = endpoint
        self._spawn_proc = spawn or (lambda ep, ident: spawn_worker(cfg, info, ep, ident))
        self.log = structlog.get_logger()
        self._lock = threading.Lock()
        self._inbox: list[tuple[str, Any]] = []
        self._wake_r = self._wake_w = -1   # the wake-up pipe, made by start()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._generation = 0
        self.slots = [Slot(i) for i in range(cfg.worker_count)]
        self._by_identity: dict[bytes, Slot] = {}
        self._retiring: list[tuple[subprocess.Popen[bytes], float]] = []
        self._queues: dict[bool, collections.deque[Batch]] = {True: collections.deque(), False: collections.deque()}
        self._idle: collections.deque[Slot] = collections.deque()
        self._beat = heartbeat_ms(cfg) / 1000
        self._last_ping = 0.0
        self.counters = collections.Counter[str]()
        self._snapshot: dict[str, Any] = {}
        self._ctx: zmq.Context | None = None
        self._router: zmq.Socket | None = None
        self._remote: zmq.Socket | None = None
        self._auth: Any = None

    # ------------------------------------------------------------ other threads

    def start(self) -> None:
        """Bind the ROUTER and start the thread (workers start from the thread)."""
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(self.endpoint)
        if self.cfg.pool.remote_endpoint:
            from semdexd.embed.remote import bind_remote

            try:
                self._remote, self._auth = bind_remote(self._ctx, self.cfg.pool.remote_endpoint,
                                                       self.cfg.pool.curve_secret_key_file)
            except ValueError:
                self._router.close(linger=0)
                self._ctx.term()
                raise
            self.log.info("embed_remote_endpoint", endpoint=self.cfg.pool.remote_endpoint)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
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
        self._wake()
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
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            if self._wake_w < 0:
                return  # shut down
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass  # pipe full: already awake

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        assert self._router is not None
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        if self._remote is not None:
            poller.register(self._remote, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while True:
                busy = any(s.batch for s in self.slots) or any(self._queues.values())
                events = dict(poller.poll(timeout=50 if busy else min(500, int(self._beat * 500))))
                if self._wake_r in events:
                    os.read(self._wake_r, 4096)
                if self._take_inbox():
                    break
                for sock in (self._router, self._remote):
                    if sock is not None and sock in events:
                        self._receive_all(sock)
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
                for batch in value:
                    self._queues[batch.priority].append(batch)
                self.counters["batches"] += len(value)
            elif kind == "cancel":
                for lane, queue in self._queues.items():
                    self._queues[lane] = collections.deque(b for b in queue if b.job is not value)
        return closing

    # ------------------------------------------------------------ messages

    def _receive_all(self, sock: zmq.Socket) -> None:
        while True:
            try:
                identity, frame = sock.recv_multipart(flags=zmq.NOBLOCK)[:2]
            except zmq.Again:
                return
            except ValueError:
                continue  # wrong frame count
            try:
                message = p.unpack(frame)
            except p.ProtocolError as exc:
                self.log.warning("embed_bad_frame", worker=identity.decode(errors="replace"), error=str(exc))
                continue
            self._on_message(sock, identity, message)

    def _on_message(self, sock: zmq.Socket, identity: bytes, message: dict[str, Any]) -> None:
        slot = self._by_identity.get(identity)
        if slot is not None and slot.sock is not sock:
            return  # an identity reused on the other endpoint: not that worker
        if slot is None and sock is self._remote and message["t"] == p.READY:
            slot = self._join_remote(sock, identity)
        if slot is None:
            if message["t"] != p.BYE:
                self._reply(sock, identity, p.pack(p.STOP))
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
            self._on_gone(slot, f"left: {message.get('reason')}")

    def _join_remote(self, sock: zmq.Socket, identity: bytes) -> Slot:
        slot = Slot(index=max((s.index for s in self.slots), default=-1) + 1, remote=True, sock=sock,
                    identity=identity, state="starting", last_seen=time.monotonic())
        self.slots.append(slot)
        self._by_identity[identity] = slot
        self.log.info("embed_remote_worker_joined", worker=identity.decode(errors="replace"))
        return slot

    def _on_ready(self, slot: Slot, message: dict[str, Any]) -> None:
        if message.get("model_id") != self.info.model_id:
            self.log.error("embed_worker_wrong_model", worker=slot.identity.decode(), model=message.get("model_id"))
            self._kill(slot, "wrong model")
            return
        slot.pid = int(message.get("pid") or slot.pid)
        slot.failures = 0
        self._become_idle(slot)
        self.log.info("embed_worker_ready", worker=slot.identity.decode(), pid=slot.pid)

    def _take_batch(self, slot: Slot, message: dict[str, Any]) -> Batch | None:
        """The slot's in-flight batch if ``message`` answers it; the slot is idle again either way."""
        batch = slot.batch
        slot.batch = None
        if isinstance(message.get("texts"), int):
            slot.total_texts += message["texts"] - slot.texts
            slot.texts = message["texts"]
        if batch is None or batch.id != message.get("id"):
            if batch is not None:  # answered an old batch: the current one is still owed
                slot.batch = batch
            return None
        return batch

    def _on_result(self, slot: Slot, message: dict[str, Any]) -> None:
        batch = self._take_batch(slot, message)
        if batch is not None:
            try:
                vectors = p.vectors_from_bytes(message.get("vec", b""), batch.size, self.info.dim)
            except p.ProtocolError as exc:
                self._on_batch_error(batch, f"bad result: {exc}")
            else:
                self.counters["texts"] += batch.size
                self.counters["tokens"] += int(message.get("tokens") or 0)
                self.counters["padded"] += int(message.get("padded") or 0)
                self._publish()  # a caller woken by this delivery sees stats that include it
                batch.job.deliver(batch.positions, list(vectors))
        if slot.batch is None:
            self._after_batch(slot)

    def _on_error(self, slot: Slot, message: dict[str, Any]) -> None:
        if message.get("busy"):
            # The worker is still on an earlier batch (its answer will come): not this batch's fault.
            if slot.batch is not None and slot.batch.id == message.get("id"):
                self._requeue(slot.batch)
                slot.batch = None
            return
        batch = self._take_batch(slot, message)
        if batch is not None:
            self._on_batch_error(batch, str(message.get("msg") or "unknown error"))
        if slot.batch is None:
            self._after_batch(slot)

    def _on_heartbeat(self, slot: Slot, message: dict[str, Any]) -> None:
        batch = slot.batch
        if batch is not None and not message.get("busy") and message.get("seen") == batch.id:
            # The worker took the batch and finished it, but its answer never arrived.
            self.log.warning("embed_result_lost", worker=slot.identity.decode(), batch=batch.id)
            slot.batch = None
            self._requeue(batch)
            self._after_batch(slot)

    # ------------------------------------------------------------ batches

    def _send(self, slot: Slot, frame: bytes) -> bool:
        return slot.sock is not None and self._reply(slot.sock, slot.identity, frame)

    @staticmethod
    def _reply(sock: zmq.Socket, identity: bytes, frame: bytes) -> bool:
        try:
            sock.send_multipart([identity, frame], flags=zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def _dispatch(self) -> None:
        while self._idle and (self._queues[True] or self._queues[False]):
            slot = self._idle.popleft()
            if slot.state != "idle":
                continue
            queue = self._queues[True] if self._queues[True] else self._queues[False]
            batch = queue.popleft()
            if batch.job.cancelled:
                self._idle.appendleft(slot)
                continue
            if not self._send(slot, p.pack(p.BATCH, id=batch.id, texts=batch.texts)):
                queue.appendleft(batch)
                slot.state = "gone"  # unreachable: the process check or the heartbeat will replace it
                continue
            slot.batch = batch
            slot.state = "busy"

    def _requeue(self, batch: Batch) -> None:
        self.counters["requeued"] += 1
        self._queues[batch.priority].appendleft(batch)

    def _on_batch_crash(self, batch: Batch) -> None:
        batch.crashes += 1
        if batch.crashes < 2:
            self._requeue(batch)
        elif batch.size == 1:
            self.counters["failed"] += 1
            self.log.warning("embed_poison_text", chars=len(batch.texts[0]), crashes=batch.crashes)
            self._publish()
            batch.job.fail(batch.positions, f"failed: text crashed the model worker {batch.crashes} times")
        else:
            first, second = batch.split()
            self.counters["splits"] += 1
            self._queues[batch.priority].extendleft([second, first])

    def _on_batch_error(self, batch: Batch, reason: str) -> None:
        if batch.size == 1:
            self.counters["failed"] += 1
            self._publish()
            batch.job.fail(batch.positions, f"failed: {reason}")
            return
        first, second = batch.split()
        self.counters["splits"] += 1
        self._queues[batch.priority].extendleft([second, first])

    def _fail_queued(self, reason: str) -> None:
        for queue in self._queues.values():
            while queue:
                batch = queue.popleft()
                self.counters["failed"] += batch.size
                batch.job.fail(batch.positions, reason)

    # ------------------------------------------------------------ workers

    def _become_idle(self, slot: Slot) -> None:
        slot.state = "idle"
        self._idle.append(slot)

    def _after_batch(self, slot: Slot) -> None:
        """The slot's worker is idle: retire it if it is due, else offer it work."""
        pool = self.cfg.pool
        due = slot.texts >= pool.max_texts_per_worker or slot.rss_mb > pool.max_worker_rss_mb
        if due and not slot.remote and slot.proc is not None:
            reason = "texts" if slot.texts >= pool.max_texts_per_worker else "rss"
            self.log.info("worker_restarted", pid=slot.pid, reason=reason, texts=slot.texts, rss_mb=slot.rss_mb,
                          queued=sum(len(q) for q in self._queues.values()))
            self._send(slot, p.pack(p.STOP))
            self._retiring.append((slot.proc, time.monotonic() + STOP_GRACE_S))
            self.counters["retired"] += 1
            self._reset(slot, restart=True)
            self._start(slot)
            return
        self._become_idle(slot)

    def _reset(self, slot: Slot, restart: bool) -> None:
        self._by_identity.pop(slot.identity, None)
        slot.proc, slot.identity, slot.pid, slot.batch = None, b"", 0, None
        slot.state, slot.texts, slot.rss_mb = "empty", 0, 0.0
        if restart:
            slot.restarts += 1
            self.counters["restarts"] += 1

    def _start(self, slot: Slot) -> None:
        self._generation += 1
        identity = f"L{slot.index}.{self._generation}"
        try:
            slot.proc = self._spawn_proc(self.endpoint, identity)
        except OSError as exc:
            self.log.error("embed_worker_spawn_failed", error=str(exc))
            self._start_failed(slot, f"spawn: {exc}")
            return
        slot.identity, slot.pid, slot.sock = identity.encode(), slot.proc.pid, self._router
        slot.state, slot.last_seen = "starting", time.monotonic()
        self._by_identity[slot.identity] = slot

    def _start_failed(self, slot: Slot, reason: str) -> None:
        slot.failures += 1
        slot.last_exit = reason
        slot.retry_at = time.monotonic() + min(MAX_BACKOFF_S, 0.5 * 2 ** (slot.failures - 1))

    def _kill(self, slot: Slot, reason: str) -> None:
        """Make sure the slot's process is gone, then treat it as dead."""
        if slot.proc is not None and slot.proc.poll() is None:
            slot.proc.kill()
            try:
                slot.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._on_gone(slot, reason)

    def _on_gone(self, slot: Slot, reason: str) -> None:
        """The slot's worker died or was declared dead: re-queue its batch, respawn."""
        was_starting = slot.state == "starting"
        self.log.warning("embed_worker_died", worker=slot.identity.decode(), pid=slot.pid, reason=reason,
                         batch=slot.batch.id if slot.batch else None, state=slot.state)
        if slot.batch is not None:
            self._on_batch_crash(slot.batch)
            slot.batch = None
        self.counters["crashes"] += 1
        if was_starting:
            self._start_failed(slot, reason)
        self._reset(slot, restart=True)
        if slot.remote:
            self.slots.remove(slot)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        silence = self._beat * heartbeat_misses(self.cfg)
        for slot in list(self.slots):
            if slot.proc is not None and slot.proc.poll() is not None:
                self._on_gone(slot, f"exit code {slot.proc.returncode}")
            elif slot.state == "starting" and now - slot.last_seen > max(START_TIMEOUT_S, silence):
                self._kill(slot, "did not start in time")
            elif slot.state in ("idle", "busy", "gone") and now - slot.last_seen > silence:
                self._kill(slot, f"silent for {now - slot.last_seen:.1f}s")
        for slot in self.slots:
            if slot.state == "empty" and not slot.remote and now >= slot.retry_at:
                self._start(slot)
        self._reap_retiring(now)
        if now - self._last_ping >= self._beat:
            self._last_ping = now
            for slot in self.slots:
                if slot.state in ("idle", "busy"):
                    self._send(slot, p.pack(p.PING))
        local = [s for s in self.slots if not s.remote]
        if local and all(s.failures >= FAILED_STARTS_LIMIT for s in local) and len(local) == len(self.slots):
            self._fail_queued(f"failed: the model worker cannot start ({local[0].last_exit})")

    def _reap_retiring(self, now: float) -> None:
        keep = []
        for proc, deadline in self._retiring:
            if proc.poll() is None:
                if now > deadline:
                    proc.kill()
                keep.append((proc, deadline))
        self._retiring = keep

    # ------------------------------------------------------------ stats and shutdown

    def _publish(self) -> None:
        queued = sum(b.size for q in self._queues.values() for b in q)
        snapshot = {
            "workers": [s.to_stats() for s in self.slots],
            "queued": queued,
            "queued_batches": sum(len(q) for q in self._queues.values()),
            "in_flight": sum(s.batch.size for s in self.slots if s.batch),
            **{k: self.counters[k] for k in ("texts", "tokens", "padded", "restarts", "crashes", "retired",
                                             "requeued", "splits", "failed", "batches")},
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
                self._queues[False].extend(value)
        self._fail_queued("failed: pool closed")
        self._stop_workers()
        self._publish()
        self._release()
        self.log.info("embed_pool_closed", **{k: self.counters[k] for k in ("texts", "restarts", "failed")})

    def _stop_workers(self) -> None:
        """``stop`` to every worker (SIGTERM if still loading); SIGKILL after the grace period."""
        for slot in self.slots:
            if slot.batch is not None:
                slot.batch.job.fail(slot.batch.positions, "failed: pool closed")
                slot.batch = None
            if slot.state == "starting" and slot.proc is not None:
                slot.proc.terminate()  # still loading the model, cannot hear "stop" yet
            elif slot.identity:
                self._send(slot, p.pack(p.STOP))
            if slot.proc is not None:
                self._retiring.append((slot.proc, time.monotonic() + STOP_GRACE_S))
        deadline = time.monotonic() + STOP_GRACE_S + 1
        while self._retiring and time.monotonic() < deadline:
            self._reap_retiring(time.monotonic())
            time.sleep(0.02)  # polling child exit during shutdown; bounded by the deadline
        for proc, _ in self._retiring:
            proc.kill()
            proc.wait()
        self._retiring = []
        for slot in self.slots:
            slot.state, slot.proc = "empty", None

    def _release(self) -> None:
        for sock in (self._router, self._remote):
            if sock is not None:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()
        with self._lock:  # _wake must never write into a recycled descriptor number
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        if self.endpoint.startswith("ipc://"):
            Path(self.endpoint[len("ipc://"):]).unlink(missing_ok=True)
