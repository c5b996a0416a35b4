"""Supervision: the worker processes' lives (spawn, ready, retire, reap, back-off, scale to zero).

Contract:
* A worker that dies (its process exits), falls silent for ``heartbeat_ms * heartbeat_misses``,
  or holds a batch past its deadline (``[pool] batch_timeout_s``) is killed and replaced; the batch
  it held is handed to the ``lost`` callback (the broker gives it back to the scheduler).
* A worker that has embedded ``max_texts_per_worker`` texts or grown past ``max_worker_rss_mb``
  is replaced between batches (never while a batch is in flight): ``stop``, successor at once.
* Workers that cannot start are retried with exponential backoff (up to 30 s); `cannot_start`
  says when every local slot failed 3 starts in a row.
* Scale to zero: after ``idle_shutdown_s`` without work, local workers get ``stop`` and the slots
  stay empty ("parked") until `demand` (new work) starts them again. The wait itself is the
  hysteresis: every batch restarts the clock, so a burst of edits keeps them up.
Knows nothing of queues: it sees a slot's batch only to hand it to ``lost``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import structlog
import zmq

from semdexd.backoff import Backoff
from semdexd.config import Config
from semdexd.embed import frames as p
from semdexd.embed.jobs import Batch
from semdexd.embed.slots import Slot, SlotState

START_TIMEOUT_S = 120.0       # a worker must load the model and say ready within this
STOP_GRACE_S = 5.0            # a stopped worker must exit within this, else SIGKILL
START_RETRY = Backoff(first_s=0.5, max_s=30.0)  # a worker that cannot start
FAILED_STARTS_LIMIT = 3

Spawn = Callable[[str, str], "subprocess.Popen[bytes]"]
Send = Callable[[Slot, bytes], bool]
Lost = Callable[[Batch, str], None]


class Supervisor:
    """The slot table and the processes behind it; used by the broker thread only."""

    def __init__(self, cfg: Config, workers: int, endpoint: str, spawn: Spawn, send: Send, lost: Lost,
                 counters: dict[str, int]) -> None:
        self.cfg = cfg
        self.endpoint = endpoint
        self.log = structlog.get_logger()
        self.counters = counters
        self._spawn, self._send, self._lost = spawn, send, lost
        self.slots = [Slot(i) for i in range(workers)]
        self._by_identity: dict[bytes, Slot] = {}
        self._retiring: list[tuple[subprocess.Popen[bytes], float]] = []
        self._generation = 0
        self._local_sock: zmq.Socket[bytes] | None = None
        self.parked = False
        self._last_work = time.monotonic()

    def attach(self, local_sock: zmq.Socket[bytes]) -> None:
        """The ROUTER that local workers connect to (set before the first `housekeeping`)."""
        self._local_sock = local_sock

    # ------------------------------------------------------------ lookups

    def find(self, identity: bytes) -> Slot | None:
        return self._by_identity.get(identity)

    def idle_slots(self) -> list[Slot]:
        return [s for s in self.slots if s.state is SlotState.IDLE]

    def busy(self) -> bool:
        return any(s.batch is not None for s in self.slots)

    def join_remote(self, sock: zmq.Socket[bytes], identity: bytes) -> Slot:
        """A worker from another host said ``ready`` on the remote endpoint: give it a slot."""
        slot = Slot(index=max((s.index for s in self.slots), default=-1) + 1, remote=True, sock=sock,
                    identity=identity, last_seen=time.monotonic())
        slot.move(SlotState.STARTING)
        self.slots.append(slot)
        self._by_identity[identity] = slot
        self.log.info("embed_remote_worker_joined", worker=identity.decode(errors="replace"))
        return slot

    # ------------------------------------------------------------ life events

    def ready(self, slot: Slot, pid: int) -> None:
        """The worker loaded its model. A batch the slot still held (the worker restarted under the
        same identity) is lost with it: handed to ``lost``, never overwritten."""
        if slot.batch is not None:
            batch, slot.batch = slot.batch, None
            self.log.warning("embed_worker_restarted_holding_batch", worker=slot.identity.decode(), batch=batch.id)
            self._lost(batch, "worker restarted")
        slot.pid = pid or slot.pid
        slot.failures = 0
        slot.move(SlotState.IDLE)

    def after_batch(self, slot: Slot) -> None:
        """The slot's worker finished a batch: retire it if it is due, else it is idle."""
        self._last_work = time.monotonic()
        pool = self.cfg.pool
        due = slot.texts >= pool.max_texts_per_worker or slot.rss_mb > pool.max_worker_rss_mb
        if due and not slot.remote and slot.proc is not None:
            reason = "texts" if slot.texts >= pool.max_texts_per_worker else "rss"
            self.log.info("worker_restarted", pid=slot.pid, reason=reason, texts=slot.texts, rss_mb=slot.rss_mb)
            self.counters["retired"] += 1
            self._retire(slot, restart=True)
            self._start(slot)
            return
        slot.move(SlotState.IDLE)

    def demand(self) -> None:
        """Work arrived: restart the idle clock; parked workers start again."""
        self._last_work = time.monotonic()
        if self.parked:
            self.parked = False
            self.counters["unparks"] += 1
            self.log.info("embed_workers_unparked")
            for slot in self.slots:
                if slot.state is SlotState.EMPTY and not slot.remote:
                    slot.retry_at = 0.0

    def kill(self, slot: Slot, reason: str) -> None:
        """Make sure the slot's process is gone, then treat it as dead."""
        if slot.proc is not None and slot.proc.poll() is None:
            slot.proc.kill()
            try:
                slot.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.gone(slot, reason)

    def gone(self, slot: Slot, reason: str) -> None:
        """The slot's worker died or was declared dead: its batch goes to ``lost``; respawn later."""
        was_starting = slot.state is SlotState.STARTING
        self.log.warning("embed_worker_died", worker=slot.identity.decode(), pid=slot.pid, reason=reason,
                         batch=slot.batch.id if slot.batch else None, state=slot.state.value)
        batch, slot.batch = slot.batch, None
        self.counters["crashes"] += 1
        if was_starting:
            self._start_failed(slot, reason)
        self._reset(slot, restart=True)
        if slot.remote:
            self.slots.remove(slot)
        if batch is not None:
            self._lost(batch, reason)

    def unreachable(self, slot: Slot) -> None:
        """A send to the slot failed: housekeeping replaces it (process check or silence)."""
        slot.move(SlotState.GONE)

    # ------------------------------------------------------------ the periodic pass

    def housekeeping(self, has_work: bool) -> str:
        """Reap, replace, start, ping, park. Returns why no worker can start, or ""."""
        now = time.monotonic()
        self._check(now)
        if has_work:
            self.demand()
        elif not self.parked and self._idle_for(now):
            self._park()
        if not self.parked:
            for slot in self.slots:
                if slot.state is SlotState.EMPTY and not slot.remote and now >= slot.retry_at:
                    self._start(slot)
        self._reap_retiring(now)
        local = [s for s in self.slots if not s.remote]
        if local and all(s.failures >= FAILED_STARTS_LIMIT for s in local) and len(local) == len(self.slots):
            return f"failed: the model worker cannot start ({local[0].last_exit})"
        return ""

    def ping(self) -> None:
        for slot in self.slots:
            if slot.state in (SlotState.IDLE, SlotState.BUSY):
                self._send(slot, p.pack(p.PING))

    def _check(self, now: float) -> None:
        silence = self.cfg.pool.heartbeat_ms / 1000 * self.cfg.pool.heartbeat_misses
        for slot in list(self.slots):
            if slot.proc is not None and slot.proc.poll() is not None:
                self.gone(slot, f"exit code {slot.proc.returncode}")
            elif slot.state is SlotState.STARTING and now - slot.last_seen > max(START_TIMEOUT_S, silence):
                self.kill(slot, "did not start in time")
            elif slot.state is SlotState.BUSY and now > slot.deadline:
                self.counters["deadlines"] += 1
                self.kill(slot, f"batch past its deadline ({self.cfg.pool.batch_timeout_s:g}s)")
            elif slot.state in (SlotState.IDLE, SlotState.BUSY, SlotState.GONE) and now - slot.last_seen > silence:
                self.kill(slot, f"silent for {now - slot.last_seen:.1f}s")

    def _idle_for(self, now: float) -> bool:
        limit = self.cfg.pool.idle_shutdown_s
        local = [s for s in self.slots if not s.remote]
        return (limit > 0 and now - self._last_work >= limit and bool(local)
                and all(s.state in (SlotState.IDLE, SlotState.EMPTY) for s in local))

    def _park(self) -> None:
        self.parked = True
        self.counters["parks"] += 1
        self.log.info("embed_workers_parked", idle_s=self.cfg.pool.idle_shutdown_s)
        for slot in self.slots:
            if not slot.remote and slot.state is SlotState.IDLE:
                self._retire(slot, restart=False)

    # ------------------------------------------------------------ processes

    def _retire(self, slot: Slot, restart: bool) -> None:
        self._send(slot, p.pack(p.STOP))
        if slot.proc is not None:
            self._retiring.append((slot.proc, time.monotonic() + STOP_GRACE_S))
        self._reset(slot, restart=restart)

    def _reset(self, slot: Slot, restart: bool) -> None:
        self._by_identity.pop(slot.identity, None)
        slot.proc, slot.identity, slot.pid, slot.batch = None, b"", 0, None
        slot.texts, slot.rss_mb = 0, 0.0
        slot.move(SlotState.EMPTY)
        if restart:
            slot.restarts += 1
            self.counters["restarts"] += 1

    def _start(self, slot: Slot) -> None:
        self._generation += 1
        identity = f"L{slot.index}.{self._generation}"
        try:
            slot.proc = self._spawn(self.endpoint, identity)
        except OSError as exc:
            self.log.error("embed_worker_spawn_failed", error=str(exc))
            self._start_failed(slot, f"spawn: {exc}")
            return
        slot.identity, slot.pid, slot.sock = identity.encode(), slot.proc.pid, self._local_sock
        slot.last_seen = time.monotonic()
        slot.move(SlotState.STARTING)
        self._by_identity[slot.identity] = slot

    def _start_failed(self, slot: Slot, reason: str) -> None:
        slot.failures += 1
        slot.last_exit = reason
        slot.retry_at = time.monotonic() + START_RETRY.delay(slot.failures)

    def _reap_retiring(self, now: float) -> None:
        keep = []
        for proc, deadline in self._retiring:
            if proc.poll() is None:
                if now > deadline:
                    proc.kill()
                keep.append((proc, deadline))
        self._retiring = keep

    def stop_all(self) -> list[Batch]:
        """``stop`` to every worker (SIGTERM if still loading), SIGKILL after the grace period.
        Returns the batches the slots held (the caller fails them)."""
        held = []
        for slot in self.slots:
            if slot.batch is not None:
                held.append(slot.batch)
                slot.batch = None
            if slot.state is SlotState.STARTING and slot.proc is not None:
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
            slot.proc = None
            slot.move(SlotState.EMPTY)
        return held
