"""Search at scale, run as ``semdexd bench scale corpus|run [options]``:

* ``corpus --into DIR --mb N [--not-in DIR]... SOURCE...``: copy up to N MB of real text files
  (code and docs: .py .md .rst .txt .c .h .js .ts ..., 1 kB to 512 kB, sorted by path, no two with
  the same content, none already present in a ``--not-in`` folder) from the SOURCE folders into
  DIR, keeping their relative paths under one sub-folder per source.
* ``run --data DIR --folder F [--folder F]... [--queries N]``: a real `Service` with its data in
  DIR (kept between runs) watching the folders F; whatever is new is indexed first (a search
  every 2 s meanwhile), then the first search after that and idle searches in each mode are
  timed, and the footprint is taken once the workers have parked. Prints JSON: chunks, index
  time, chunks/s, p50/p95 ms per phase, RSS, disk size.

Building 100k chunks, then 500k on top of them (a copy of the first data dir, so that nothing is
re-embedded), measuring search at each size::

    semdexd bench scale corpus --into /tmp/scale/c1 --mb 46 SITE_PACKAGES
    semdexd bench scale run --data /tmp/scale/d100k --folder /tmp/scale/c1
    semdexd bench scale corpus --into /tmp/scale/c2 --mb 190 --not-in /tmp/scale/c1 /usr/include ...
    cp -a /tmp/scale/d100k /tmp/scale/d500k
    semdexd bench scale run --data /tmp/scale/d500k --folder /tmp/scale/c1 --folder /tmp/scale/c2

The benchmark process plays the daemon; the machine may be shared, so figures are medians and
the load average is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import structlog

from semdexd.bench.common import Sampler, bench_config, until_idle, wait_until
from semdexd.bench.common import percentile as _pct
from semdexd.bench.engine import ASKS, memory
from semdexd.config import Config

SUFFIXES = frozenset({".py", ".md", ".rst", ".txt", ".c", ".h", ".cc", ".cpp", ".hpp", ".js", ".ts", ".go",
                      ".rs", ".java", ".sh", ".pl", ".rb", ".lua", ".tex", ".html"})
MIN_BYTES, MAX_BYTES = 1024, 512 * 1024
MODES = ("hybrid", "semantic", "lexical")

log = structlog.get_logger()


# ---------------------------------------------------------------- corpus


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def _candidates(source: Path) -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder, name)
            try:
                if path.suffix in SUFFIXES and not path.is_symlink() and MIN_BYTES <= path.stat().st_size <= MAX_BYTES:
                    out.append(path)
            except OSError:
                continue
    return out


def build_corpus(into: Path, mb: float, sources: list[Path], not_in: list[Path]) -> dict[str, Any]:
    """Copy up to ``mb`` MB of distinct text files from ``sources`` into ``into`` (see module doc)."""
    seen = {_digest(p) for folder in not_in for p in folder.rglob("*") if p.is_file()}
    budget, copied, total = int(mb * 1e6), 0, 0
    for i, source in enumerate(sources):
        for path in _candidates(source):
            size = path.stat().st_size
            if total + size > budget:
                break
            try:
                digest = _digest(path)
            except OSError:
                continue
            if digest in seen:
                continue
            seen.add(digest)
            dest = into / f"{i}-{source.name or 'root'}" / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            copied, total = copied + 1, total + size
    return {"into": str(into), "files": copied, "mb": round(total / 1e6, 1), "sources": [str(s) for s in sources]}


# ---------------------------------------------------------------- run


class _BusySearches(Sampler):
    """One search every ``every`` seconds while the index grows: (chunks, ms) pairs."""

    def __init__(self, run: _Run, every: float) -> None:
        super().__init__(every)
        self.run = run
        self.samples: list[tuple[int, float]] = []

    def sample(self) -> None:
        if self.run.svc.state() != "idle":
            ms = self.run.search_ms(len(self.samples), "hybrid")
            chunks = int(self.run.svc.status().get("chunks", 0))
            self.samples.append((chunks, ms))
            if len(self.samples) % 30 == 0:  # a long run leaves figures behind even if it is cut short
                recent = [m for _, m in self.samples[-30:]]
                log.info("scale_progress", chunks=chunks, busy_p50_ms=_pct(recent, 50), busy_p95_ms=_pct(recent, 95))


class _Run:
    """A `Service` on a kept data dir (``data/``, ``state/`` inside ``work``)."""

    def __init__(self, cfg: Config, work: Path, folders: list[Path]) -> None:
        self.cfg = bench_config(cfg, folders, work, cache_mb=0, idle_shutdown_s=20)
        self.runtime = self.cfg.paths.runtime_dir
        from semdexd.app.handlers import Api
        from semdexd.app.service import Service

        self.svc = Service(self.cfg)
        self.search = Api(self.svc).handlers()["search"]

    def search_ms(self, i: int, mode: str) -> float:
        start = time.perf_counter()
        self.search({"query": f"{ASKS[i % len(ASKS)]} {i}", "limit": 10, "mode": mode})
        return (time.perf_counter() - start) * 1000


def _du_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def run(cfg: Config, work: Path, folders: list[Path], queries: int) -> dict[str, Any]:
    """Index what is new under ``folders`` into ``work``, then time searches (see module doc)."""
    r = _Run(cfg, work, folders)
    start = time.perf_counter()
    try:
        r.svc.start()
        if not wait_until(lambda: r.svc.error or r.svc.parts is not None, 600):
            raise RuntimeError("the service did not start")
        opened_s = time.perf_counter() - start
        before = int(r.svc.manifest.counts()["chunks"])
        with _BusySearches(r, 2.0) as busy:
            until_idle(r.svc, 6 * 3600, step=0.5)
        wall = time.perf_counter() - start - opened_s
        status = r.svc.status()
        chunks = int(status.get("chunks", 0))
        first_ms = r.search_ms(0, "hybrid")  # the daemon warms up at start: is anything still loaded now?
        idle = {mode: [r.search_ms(1000 + i, mode) for i in range(queries)] for mode in MODES}
        indexed_rss = memory()
        wait_until(lambda: r.svc.parts is not None and r.svc.pool.stats().get("parked"), 120, step=0.5)
        wait_until(lambda: not psutil.Process().children(), 30, step=0.5)
        r.search_ms(0, "hybrid")
        parked_rss = memory()
    finally:
        r.svc.stop()
        shutil.rmtree(r.runtime, ignore_errors=True)
    added = chunks - before
    busy_ms = [ms for _, ms in busy.samples]
    return {"folders": [str(f) for f in folders], "chunks": chunks, "files_indexed": status.get("files_indexed"),
            "open_s": round(opened_s, 1), "first_search_ms": round(first_ms, 1), "new_chunks": added,
            "index_wall_s": round(wall, 1),
            "chunks_per_s": round(added / wall, 1) if added > 0 and wall > 0 else None,
            "stage_share_pct": {k: v.get("share_pct") for k, v in status.get("stages", {}).items()} if added else None,
            "busy_searches": len(busy_ms), "busy_p50_ms": _pct(busy_ms, 50), "busy_p95_ms": _pct(busy_ms, 95),
            "busy_chunks_range": [busy.samples[0][0], busy.samples[-1][0]] if busy.samples else None,
            "idle_queries_per_mode": queries,
            "idle_ms": {mode: {"p50": _pct(v, 50), "p95": _pct(v, 95)} for mode, v in idle.items()},
            "rss_index_complete_mb": indexed_rss["total_rss_mb"], "rss_parked_mb": parked_rss["total_rss_mb"],
            "rss_parked": parked_rss, "data_dir_mb": _du_mb(work)}


# ---------------------------------------------------------------- entry


def main(argv: list[str], cfg: Config) -> int:
    """``semdexd bench scale corpus|run ...``; prints JSON figures; returns 0."""
    parser = argparse.ArgumentParser(prog="semdexd bench scale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="name", required=True)
    corpus = sub.add_parser("corpus", help="copy real text files into a corpus folder")
    corpus.add_argument("sources", nargs="+", type=Path)
    corpus.add_argument("--into", type=Path, required=True)
    corpus.add_argument("--mb", type=float, required=True)
    corpus.add_argument("--not-in", type=Path, action="append", default=[], help="skip files present here")
    measure = sub.add_parser("run", help="index what is new, then time searches")
    measure.add_argument("--data", type=Path, required=True, help="kept between runs")
    measure.add_argument("--folder", type=Path, action="append", required=True)
    measure.add_argument("--queries", type=int, default=60, help="idle searches per mode")
    measure.add_argument("--workers", type=int, default=0, help="pool size (default: config)")
    args = parser.parse_args(argv)
    if getattr(args, "workers", 0):
        cfg = replace(cfg, pool=replace(cfg.pool, workers=args.workers))
    os.environ.setdefault("SEMDEX_WORKER_LOG_LEVEL", "warning")
    load = [round(x, 2) for x in os.getloadavg()]
    if args.name == "corpus":
        result = build_corpus(args.into, args.mb, args.sources, args.not_in)
    else:
        result = run(cfg, args.data, [f.resolve() for f in args.folder], args.queries)
    print(json.dumps({"bench": f"scale {args.name}", "loadavg_before": load, "cpu_count": os.cpu_count(),
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()], "result": result}, indent=1))
    return 0
