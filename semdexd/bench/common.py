"""A background sampler for benchmarks: calls `sample()` every ``every`` seconds on a thread
while the ``with`` block runs, and once more when it ends."""

from __future__ import annotations

import threading
from typing import Self


class Sampler:
    """Subclasses implement `sample`; `__exit__` stops the thread and waits for it."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=type(self).__name__)

    def sample(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.every):
                return
