"""What the benchmarks share: a config for their own service, waiting on a condition with a
deadline, indexing a service to idle, percentiles, and a background `Sampler`."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from semdexd.config import Config


def bench_config(cfg: Config, folders: Sequence[Path], work: Path, **pool: Any) -> Config:
    """``cfg`` for a benchmark's own `Service`: data and state in ``work``, a new short runtime
    dir under /tmp (the caller removes ``paths.runtime_dir``), ``folders`` watched without the
    periodic reconcile, and these ``[pool]`` settings."""
    paths = replace(cfg.paths, data_dir=work / "data", state_dir=work / "state",
                    runtime_dir=Path(tempfile.mkdtemp(prefix="sxb", dir="/tmp")))
    index = replace(cfg.index, folders=tuple(folders), reconcile_interval_s=0)
    return replace(cfg, paths=paths, index=index, pool=replace(cfg.pool, **pool))


def wait_until(pred: Callable[[], Any], timeout: float, step: float = 0.05) -> bool:
    """Poll ``pred`` every ``step`` seconds until it is truthy (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)  # bench only: polling the daemon's state with a deadline
    return False


def percentile(values: Sequence[float], q: int, digits: int = 1) -> float | None:
    """The ``q``-th percentile of ``values`` (nearest rank), rounded to ``digits``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], digits)


def until_idle(svc: Any, timeout: float, step: float = 0.05) -> None:
    """Wait for a started `Service` to finish indexing and its start-up work (`settled`: a
    rebuilt index served, the previous one closed); RuntimeError if it failed or timed out."""
    if not wait_until(lambda: svc.error or (svc.state() == "idle" and svc.settled.is_set()), timeout, step):
        raise RuntimeError(f"indexing did not finish within {timeout:g} s")
    if svc.error:
        raise RuntimeError(svc.error)


class Sampler:
    """Calls `sample()` every ``every`` seconds on a thread while the ``with`` block runs (once
    at its start); subclasses implement `sample`; `__exit__` stops the thread and waits for it."""

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
