"""The worker table: one `Slot` per place for a worker, its state an explicit `SlotState`.

A slot's state changes only through `Slot.move`, which checks the transition against `ALLOWED`
and raises `IllegalTransition` otherwise (a scheduling or supervision bug, never user input):

* ``EMPTY``    no process (not started yet, died, retired, or parked while the pool is idle)
* ``STARTING`` spawned, loading the model, has not said ``ready``
* ``IDLE``     ready for a batch
* ``BUSY``     holds one batch (``Slot.batch``) until its answer or its deadline
* ``GONE``     unreachable (a send failed): housekeeping replaces it
"""

from __future__ import annotations

import enum
import subprocess
from dataclasses import dataclass
from typing import Any

import zmq

from semdexd.embed.jobs import Batch


class SlotState(enum.Enum):
    EMPTY = "empty"
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    GONE = "gone"


S = SlotState
ALLOWED: dict[SlotState, frozenset[SlotState]] = {
    S.EMPTY: frozenset({S.STARTING, S.EMPTY}),
    S.STARTING: frozenset({S.IDLE, S.EMPTY}),
    S.IDLE: frozenset({S.BUSY, S.IDLE, S.EMPTY, S.GONE}),
    S.BUSY: frozenset({S.IDLE, S.EMPTY, S.GONE}),
    S.GONE: frozenset({S.EMPTY}),
}


class IllegalTransition(RuntimeError):
    """A slot was asked to move along a transition that `ALLOWED` does not have."""


@dataclass(eq=False)
class Slot:
    """One place for a worker: local slots respawn their process, remote slots come and go."""

    index: int
    remote: bool = False
    sock: zmq.Socket[bytes] | None = None  # the ROUTER this worker is connected to
    proc: subprocess.Popen[bytes] | None = None
    identity: bytes = b""
    pid: int = 0
    state: SlotState = SlotState.EMPTY
    batch: Batch | None = None
    deadline: float = 0.0         # monotonic time by which ``batch`` must be answered
    texts: int = 0                # embedded by the current process
    total_texts: int = 0
    restarts: int = 0
    rss_mb: float = 0.0
    last_seen: float = 0.0
    failures: int = 0             # consecutive failed starts
    retry_at: float = 0.0
    last_exit: str = ""

    def move(self, new: SlotState) -> None:
        """Change state along an allowed transition; `IllegalTransition` for any other."""
        if new not in ALLOWED[self.state]:
            raise IllegalTransition(f"worker slot {self.index} ({self.identity.decode(errors='replace')}): "
                                    f"{self.state.value} -> {new.value} is not a legal transition")
        self.state = new

    def to_stats(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": self.state.value, "rss_mb": self.rss_mb, "texts": self.total_texts,
                "restarts": self.restarts, "remote": self.remote}
