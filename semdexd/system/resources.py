"""How many embedding workers fit this machine when ``[pool] workers = 0``.

One worker per usable core, bounded by memory: each worker needs ~``WORKER_MB`` (130-180 MB
resident measured with MiniLM-L6 int8, batch 4; 200 with headroom) and the daemon itself keeps
``DAEMON_MB`` (Chroma's HNSW index lives in RAM). The memory budget is the tightest cgroup limit
of this process (``memory.high``/``memory.max`` on cgroup v2, ``memory.limit_in_bytes`` on v1:
the systemd unit's ``MemoryHigh=2G`` gives 7 workers, not 16 on a 16-core machine); without one,
a quarter of physical RAM (a background indexer should not take more). Always at least 1.

Reader processes (`semdexd.index.readers`, ``[index] readers = 0``) get what the daemon and the
workers leave of that budget: one per usable core, each ``READER_MB`` plus the model's tokenizer
(~``TOKENIZER_SCALE`` times its ``tokenizer.json``: MiniLM's 0.4 MB file takes 9 MB, e5's 16 MB
takes 282 MB), at least 1. Under the unit's ``MemoryHigh=2G`` on 16 cores that is 2 MiniLM
readers, 1 e5 reader, instead of 16 readers beside 7 workers (~2.7 GB with MiniLM, 6 GB with e5).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

WORKER_MB = 200
DAEMON_MB = 512
READER_MB = 48                # a reader without its tokenizer: Python, the extractors, its memo, a file's chunks
TOKENIZER_SCALE = 18          # a loaded tokenizer's size over its tokenizer.json's (measured 17-22)
RAM_SHARE = 4                 # no cgroup limit: the daemon budgets 1/RAM_SHARE of physical RAM
UNLIMITED = 1 << 60           # cgroup v1 writes "no limit" as a huge number of bytes


def default_workers(cores: int, threads_per_worker: int, budget_mb: int | None) -> int:
    """Workers for ``cores`` usable cores and a memory budget (None = no memory bound); >= 1."""
    by_cpu = max(1, cores // max(1, threads_per_worker))
    if budget_mb is None:
        return by_cpu
    by_memory = max(1, (budget_mb - DAEMON_MB) // WORKER_MB)
    return min(by_cpu, by_memory)


def default_readers(cores: int, budget_mb: int | None, workers: int, tokenizer_mb: float) -> int:
    """Reader processes for ``cores`` usable cores within what a memory budget (None = no memory
    bound) leaves beside the daemon and ``workers`` workers, for a tokenizer file of
    ``tokenizer_mb``; >= 1."""
    if budget_mb is None:
        return cores
    each = READER_MB + TOKENIZER_SCALE * tokenizer_mb
    return max(1, min(cores, int((budget_mb - DAEMON_MB - workers * WORKER_MB) // each)))


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
