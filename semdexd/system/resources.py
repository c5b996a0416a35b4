"""How many embedding workers and reader processes fit this machine (``[pool] workers = 0``,
``[index] readers = 0``).

One worker per usable core, bounded by memory: each worker needs ~``WORKER_MB`` with the bundled
MiniLM (130-180 MB resident measured, int8, batch 4; 200 with headroom) and the daemon itself
keeps ``DAEMON_MB`` (Chroma's HNSW index lives in RAM). A larger model costs more in every
process that loads it (`Footprint`: its weights, and its tokenizer at ~``TOKENIZER_SCALE`` times
its ``tokenizer.json``: MiniLM's 0.4 MB file takes 9 MB, e5's 16 MB takes 282 MB): an e5 worker
(~500 MB measured) is budgeted ~660 MB with headroom, its daemon ~890 MB. The memory budget is
the tightest cgroup limit of this process (``memory.high``/``memory.max`` on cgroup v2,
``memory.limit_in_bytes`` on v1: the systemd unit's ``MemoryHigh=2G`` gives 7 MiniLM workers,
not 16 on a 16-core machine, and 1 e5 worker); without one, a quarter of physical RAM (a
background indexer should not take more). Always at least 1.

Reader processes (`semdexd.index.readers`) get what the daemon and the workers leave of that
budget: one per usable core, each ``READER_MB`` plus the model's tokenizer, at least 1. Under the
unit's ``MemoryHigh=2G`` on 16 cores that is 2 MiniLM readers, 1 e5 reader, instead of 16.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

WORKER_MB = 200               # a MiniLM worker, with headroom
DAEMON_MB = 512               # the daemon with MiniLM
WORKER_BASE_MB = 120          # a worker without its model: Python, CTranslate2, ZeroMQ
HEADROOM = 1.25
READER_MB = 48                # a reader without its tokenizer: Python, the extractors, its memo, a file's chunks
TOKENIZER_SCALE = 18          # a loaded tokenizer's size over its tokenizer.json's (measured 17-22)


@dataclass(frozen=True)
class Footprint:
    """A model's files, in MB: what it adds to each process that loads it."""

    weights_mb: float
    tokenizer_file_mb: float

    @classmethod
    def of(cls, weights: Path, tokenizer: Path) -> Footprint:
        """From the files' sizes (a missing one counts as MiniLM's)."""
        return cls(_size_mb(weights, MINILM.weights_mb), _size_mb(tokenizer, MINILM.tokenizer_file_mb))

    @property
    def tokenizer_mb(self) -> float:
        return TOKENIZER_SCALE * self.tokenizer_file_mb

    @property
    def model_mb(self) -> float:
        return self.weights_mb + self.tokenizer_mb

    @property
    def worker_mb(self) -> float:
        return max(WORKER_MB, HEADROOM * (WORKER_BASE_MB + self.model_mb))

    @property
    def daemon_mb(self) -> float:
        """The daemon loads the model too (queries, token counts): beyond MiniLM's, added."""
        return DAEMON_MB + max(0.0, self.model_mb - MINILM.model_mb)

    @property
    def reader_mb(self) -> float:
        return READER_MB + self.tokenizer_mb


MINILM = Footprint(22.4, 0.45)   # the bundled model, with which WORKER_MB and DAEMON_MB were measured


def _size_mb(path: Path, default: float) -> float:
    try:
        return path.stat().st_size / 2**20
    except OSError:
        return default
RAM_SHARE = 4                 # no cgroup limit: the daemon budgets 1/RAM_SHARE of physical RAM
UNLIMITED = 1 << 60           # cgroup v1 writes "no limit" as a huge number of bytes


def default_workers(cores: int, threads_per_worker: int, budget_mb: int | None,
                    model: Footprint = MINILM) -> int:
    """Workers for ``cores`` usable cores and a memory budget (None = no memory bound); >= 1."""
    by_cpu = max(1, cores // max(1, threads_per_worker))
    if budget_mb is None:
        return by_cpu
    by_memory = max(1, int((budget_mb - model.daemon_mb) // model.worker_mb))
    return min(by_cpu, by_memory)


def default_readers(cores: int, budget_mb: int | None, workers: int, model: Footprint = MINILM) -> int:
    """Reader processes for ``cores`` usable cores within what a memory budget (None = no memory
    bound) leaves beside the daemon and ``workers`` workers; >= 1."""
    if budget_mb is None:
        return cores
    left = budget_mb - model.daemon_mb - workers * model.worker_mb
    return max(1, min(cores, int(left // model.reader_mb)))


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity, e.g. taskset or a container), else all."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _limit_bytes(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= UNLIMITED:
        return None  # "max", empty, or v1's "unlimited"
    return int(text)


def _own_cgroups(proc_cgroup: str) -> Mapping[str, str]:
    """controller ("" for v2) -> path, from the text of /proc/self/cgroup."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                out[controller] = parts[2]
    return out


def cgroup_limit_bytes(proc_cgroup: str, root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The tightest memory limit on this process's cgroup and its ancestors, in bytes, or None."""
    groups = _own_cgroups(proc_cgroup)
    limits: list[int] = []
    if "" in groups:  # v2: the unified hierarchy (or its hybrid mount point)
        base = root / "unified" if (root / "unified" / "cgroup.controllers").exists() else root
        folder = base / groups[""].lstrip("/")
        while True:
            for name in ("memory.high", "memory.max"):
                value = _limit_bytes(folder / name)
                if value is not None:
                    limits.append(value)
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    if "memory" in groups:  # v1
        for folder in (root / "memory" / groups["memory"].lstrip("/"), root / "memory"):
            value = _limit_bytes(folder / "memory.limit_in_bytes")
            if value is not None:
                limits.append(value)
                break
    return min(limits) if limits else None


def physical_ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget_mb() -> int | None:
    """The cgroup limit, else 1/RAM_SHARE of physical RAM, in MB; None if neither is known."""
    try:
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        proc_cgroup = ""
    limit = cgroup_limit_bytes(proc_cgroup)
    if limit is None:
        ram = physical_ram_bytes()
        limit = ram // RAM_SHARE if ram else None
    return None if limit is None else limit // 2**20
