"""Starting local worker processes (the command line and environment of one worker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from semdexd.config import Config
from semdexd.embed.model import ModelInfo


def worker_command(cfg: Config, info: ModelInfo, endpoint: str, identity: str) -> list[str]:
    """``python -m semdexd.embed.worker ...`` for a local worker of this process."""
    return [
        sys.executable, "-m", "semdexd.embed.worker",
        "--endpoint", endpoint,
        "--identity", identity,
        "--info", json.dumps(info.to_dict()),
        "--threads", str(cfg.pool.threads_per_worker),
        "--heartbeat-ms", str(cfg.pool.heartbeat_ms),
        "--heartbeat-misses", str(cfg.pool.heartbeat_misses),
        "--nice", str(cfg.pool.nice),
        "--parent-pid", str(os.getpid()),
    ]


def worker_env(cfg: Config) -> dict[str, str]:
    """The daemon's environment, with thread counts pinned to the worker's share of the cores."""
    env = dict(os.environ)
    threads = str(cfg.pool.threads_per_worker)
    env["OMP_NUM_THREADS"] = threads
    env["RAYON_NUM_THREADS"] = threads  # the tokenizers library's thread pool
    env["TOKENIZERS_PARALLELISM"] = "true" if cfg.pool.threads_per_worker > 1 else "false"
    return env


def spawn_worker(cfg: Config, info: ModelInfo, endpoint: str, identity: str) -> subprocess.Popen[bytes]:
    """Start one worker; it connects to ``endpoint`` and dies with this process."""
    return subprocess.Popen(worker_command(cfg, info, endpoint, identity), env=worker_env(cfg),
                            stdin=subprocess.DEVNULL, close_fds=True)
