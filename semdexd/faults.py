"""Test-only fault injection, in one place: each hook is off unless its environment variable is
set, and costs one attribute check when off. The tests use them to prove what a real crash, a
stuck native call or a text that kills the model does to the daemon.

* ``SEMDEX_TEST_CRASH_AT``: ``STAGE:N`` kills the process (exit 137, as kill -9 would) the N-th
  time the indexer reaches ``STAGE`` (``prepare``, ``after_delete``, ``after_add``, ...);
  ``prepare@NAME`` when it starts reading a file named NAME (a poison file).
* ``SEMDEX_TEST_HANG_AT``: ``STAGE:N`` hangs there instead, inside a native call that holds the
  GIL and never returns (as a stuck store write would).
* ``SEMDEX_TEST_POISON``: an embedding worker given a batch with a text containing this marker
  exits at once with `POISON_EXIT` (a text that crashes the model).
* ``SEMDEX_TEST_HANG``: such a batch never finishes, while the worker's heartbeats go on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger()

CRASH_AT_ENV = "SEMDEX_TEST_CRASH_AT"
HANG_AT_ENV = "SEMDEX_TEST_HANG_AT"
POISON_ENV = "SEMDEX_TEST_POISON"
HANG_ENV = "SEMDEX_TEST_HANG"
CRASH_EXIT = 137
POISON_EXIT = 70


@dataclass
class Faults:
    """The hooks this process was started with (`from_env`)."""

    crash_at: str = ""
    hang_at: str = ""
    poison: str = ""
    hang: str = ""
    _hits: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Faults:
        return cls(env.get(CRASH_AT_ENV, ""), env.get(HANG_AT_ENV, ""), env.get(POISON_ENV, ""),
                   env.get(HANG_ENV, ""))

    def stage(self, stage: str, name: str = "") -> None:
        """The indexer reached ``stage`` (for file ``name``): crash or hang here if asked to."""
        if not (self.crash_at or self.hang_at):
            return
        self._hits[stage] = self._hits.get(stage, 0) + 1
        if self.crash_at in (f"{stage}:{self._hits[stage]}", f"{stage}@{name}"):
            log.warning("test_crash_injected", stage=stage)
            os._exit(CRASH_EXIT)
        if self.hang_at == f"{stage}:{self._hits[stage]}":
            import ctypes

            log.warning("test_hang_injected", stage=stage)
            libc = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call
            while True:
                libc.sleep(3600)

    def kills_worker(self, texts: Sequence[str]) -> bool:
        return bool(self.poison) and any(self.poison in t for t in texts)

    def hangs_worker(self, texts: Sequence[str]) -> bool:
        return bool(self.hang) and any(self.hang in t for t in texts)
