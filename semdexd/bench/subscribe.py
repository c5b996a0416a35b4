"""`semdexd bench subscribe [PATH] [--runs N] [--json]`: does a stuck subscriber slow indexing?

Cold-indexes a copy of PATH (default: a generated corpus of 60 small notes) with the real
Service and socket Server, alternately without and with a subscriber that subscribes to every
event and then never reads (its receive buffer shrunk to the minimum, so the daemon's sends to
it block once a few events are queued). Prints the median index wall time of each and their
ratio (with / without; 1.0 means no effect), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

from semdexd.bench.common import bench_config, until_idle, wait_until
from semdexd.config import Config

WORDS = ["index", "search", "vector", "chunk", "model", "socket", "daemon", "worker", "query", "folder", "file", "line", "token", "editor", "plugin", "progress", "event", "state", "idle", "queue"]


def _generate(folder: Path, files: int = 60) -> None:
    folder.mkdir(parents=True)
    for i in range(files):
        paras = [" ".join(WORDS[(i * 7 + j * 3 + k) % len(WORDS)] for k in range(40)) for j in range(4)]
        (folder / f"note{i:03}.md").write_text(f"# Note {i}\n\n" + "\n\n".join(paras) + "\n")


def _stuck_subscriber(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel rounds up to its minimum
    sock.connect(str(path))
    sock.sendall(msgpack.packb([0, 1, "subscribe", [{}]]))
    return sock  # never read from


def run_once(cfg: Config, source: Path, subscriber: bool) -> dict[str, Any]:
    from semdexd.app.handlers import Api
    from semdexd.app.service import Service
    from semdexd.server import Server

    work = Path(tempfile.mkdtemp(prefix="semdex-bench-sub-"))
    corpus = work / "corpus"
    shutil.copytree(source, corpus)
    bcfg = bench_config(cfg, [corpus], work)
    svc = Service(bcfg)
    server = Server(bcfg.socket_path, Api(svc).handlers(), max_request_bytes=bcfg.server.max_request_bytes,
                    log=_Quiet(), hub=svc.events)
    server.start()
    stuck = _stuck_subscriber(bcfg.socket_path) if subscriber else None
    try:
        if stuck is not None and not wait_until(lambda: svc.events.subscribers == 1, 30):
            raise RuntimeError("the subscriber was not registered")
        start = time.perf_counter()
        svc.start()
        until_idle(svc, 3600, 0.02)
        wall = time.perf_counter() - start
        chunks = svc.progress()["chunks"]
    finally:
        if stuck is not None:
            stuck.close()
        server.close()
        svc.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {"subscriber": subscriber, "index_wall_s": round(wall, 3), "chunks": chunks}


class _Quiet:
    """A logger that drops the per-request lines."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *a, **k: None


def main(argv: list[str], cfg: Config) -> int:
    parser = argparse.ArgumentParser(prog="semdexd bench subscribe")
    parser.add_argument("path", nargs="?", type=Path, help="corpus folder (default: generated notes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="semdex-bench-corpus-"))
    source = args.path
    if source is None:
        source = tmp / "notes"
        _generate(source)
    try:
        runs = [run_once(cfg, source, sub) for _ in range(args.runs) for sub in (False, True)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    without = statistics.median(r["index_wall_s"] for r in runs if not r["subscriber"])
    with_sub = statistics.median(r["index_wall_s"] for r in runs if r["subscriber"])
    out = {"runs": runs, "median_without_s": without, "median_with_stuck_subscriber_s": with_sub,
           "ratio_with_over_without": round(with_sub / without, 3) if without else None}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"chunks: {runs[0]['chunks']}, runs: {args.runs} each, alternating")
        print(f"cold index, no subscriber:     median {without:.2f} s")
        print(f"cold index, stuck subscriber:  median {with_sub:.2f} s")
        print(f"ratio with / without:          {out['ratio_with_over_without']}")
    return 0
