"""Engine benchmarks, run as ``semdexd bench embed NAME [options]``:

* ``latency [--files N | --path DIR] [--queries N]``: search round trips through the real
  `Service` (query embedding + store + manifest), and the query-embedding step alone, while a cold
  bulk index of N stdlib files (or a copy of DIR) runs on every core, then once the index is idle:
  p50/p95 ms of each; with the cold index's files/s, chunks/s and stage shares.
* ``footprint [--files N] [--idle-s S]``: resident memory (RSS, and PSS from smaps_rollup) of the
  daemon and of each worker while indexing (peak), right after the index is complete, and once the
  workers are parked after ``idle_shutdown_s`` = S; then the import cost of each heavy dependency
  (fresh interpreters, cumulative).
* ``soak --minutes M [--files N]``: continuous one-line edits (one a second) for M minutes;
  total RSS sampled every 10 s; prints the least-squares slope in MB/min (first minute excluded).
* ``batch``: does a text's vector depend on the other texts of its batch? Each text alone vs inside
  shuffled batches of 2/4/8, for int8 and float32: min cosine, max abs difference.

The benchmark process plays the daemon (it hosts the `Service`); the machine may be shared, so
figures are medians over the samples taken and the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

import psutil

from semdexd.bench.common import Sampler, bench_config, wait_until
from semdexd.bench.common import percentile as _pct
from semdexd.config import Config

ASKS = ("how to read a zip archive", "parse command line arguments", "retry a failed network request",
        "format a date as ISO 8601", "compare two files line by line", "where are temporary files created",
        "thread safe queue", "decode base64 text", "walk a directory tree", "send an email message")


def stdlib_corpus(dest: Path, files: int) -> Path:
    """Copy ``files`` stdlib .py files (every k-th of the sorted list, >2 kB) into ``dest``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    pool = sorted(p for p in root.rglob("*.py") if p.stat().st_size > 2000 and "test" not in p.parts)
    step = max(1, len(pool) // max(1, files))
    dest.mkdir(parents=True, exist_ok=True)
    for i, source in enumerate(pool[::step][:files]):
        shutil.copyfile(source, dest / f"{i:04d}_{source.name}")
    return dest


def stdlib_paragraphs(count: int) -> list[str]:
    """``count`` blank-line-separated paragraphs (20-2000 chars) of stdlib .py files, deterministic."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    for path in sorted(root.glob("*.py"))[::7]:
        paragraphs = [p for p in path.read_text(encoding="utf-8", errors="replace").split("\n\n")
                      if 20 <= len(p) <= 2000]
        out += paragraphs[:: max(1, len(paragraphs) // 3)][:3]
        if len(out) >= count:
            break
    return out[:count]


class Daemon:
    """A real `Service` over a temp copy of a stdlib corpus, in this process."""

    def __init__(self, cfg: Config, files: int, source: Path | None = None, **pool: Any) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="semdex-engine-"))
        if source is not None:
            self.corpus = self.work / "corpus"
            shutil.copytree(source, self.corpus, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        else:
            self.corpus = stdlib_corpus(self.work / "corpus", files)
        self.cfg = bench_config(cfg, [self.corpus], self.work,
                                **{k: v for k, v in pool.items() if hasattr(cfg.pool, k)})
        from semdexd.app.service import Service

        self.svc = Service(self.cfg)

    def __enter__(self) -> Self:
        self.svc.start()
        if not wait_until(lambda: self.svc.error or self.svc.parts is not None, 300):
            raise RuntimeError("the service did not start")
        if self.svc.error:
            raise RuntimeError(self.svc.error)
        return self

    def __exit__(self, *exc: object) -> None:
        self.svc.stop()
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.cfg.paths.runtime_dir, ignore_errors=True)

    def indexing(self) -> bool:
        return self.svc.state() != "idle"

    def search_ms(self, i: int) -> float:
        from semdexd.app.handlers import Api

        search = Api(self.svc).handlers()["search"]
        start = time.perf_counter()
        search({"query": f"{ASKS[i % len(ASKS)]} {i}", "limit": 10})
        return (time.perf_counter() - start) * 1000

    def embed_ms(self, i: int) -> float:
        """The query-embedding step of a search alone (a new text: no cache hit)."""
        start = time.perf_counter()
        self.svc.pool.embed([f"{ASKS[i % len(ASKS)]} #{i}"], kind="query", priority=True)
        return (time.perf_counter() - start) * 1000


def memory() -> dict[str, Any]:
    """RSS and PSS (MB) of this process and of each child."""
    me = psutil.Process()
    procs = [("daemon", me)] + [(f"worker {c.pid}", c) for c in me.children(recursive=True)]
    out: dict[str, Any] = {}
    for name, proc in procs:
        try:
            full = proc.memory_full_info()
            out[name] = {"rss_mb": round(full.rss / 2**20, 1), "pss_mb": round(full.pss / 2**20, 1)}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    out["total_rss_mb"] = round(sum(v["rss_mb"] for v in out.values()), 1)
    out["total_pss_mb"] = round(sum(v["pss_mb"] for k, v in out.items() if isinstance(v, dict)), 1)
    return out


class MemorySampler(Sampler):
    """Samples `memory` every ``every`` seconds; keeps (t, total_rss) and the peak."""

    def __init__(self, every: float) -> None:
        super().__init__(every)
        self.samples: list[tuple[float, float]] = []
        self.peak: dict[str, Any] = {"total_rss_mb": 0.0}
        self._start = time.monotonic()

    def sample(self) -> None:
        now = memory()
        self.samples.append((time.monotonic() - self._start, now["total_rss_mb"]))
        if now["total_rss_mb"] > self.peak["total_rss_mb"]:
            self.peak = now


# ---------------------------------------------------------------- latency


def latency(cfg: Config, files: int, queries: int, source: Path | None) -> dict[str, Any]:
    """Search (and query-embedding) round trips during the cold index and once it is idle, plus
    the cold index's own figures (files/s, chunks/s, stage shares)."""
    with Daemon(cfg, files, source, cache_mb=0) as d:
        busy: list[float] = []
        busy_embed: list[float] = []
        start = time.perf_counter()
        wait_until(lambda: d.svc.status().get("chunks", 0) > 0, 300)
        while d.indexing() and len(busy) < queries:
            busy.append(d.search_ms(len(busy)))
            busy_embed.append(d.embed_ms(len(busy)))
            time.sleep(0.1)  # spread the queries over the bulk index
        if not wait_until(lambda: not d.indexing(), 3600):
            raise RuntimeError("the index did not finish")
        wall = time.perf_counter() - start
        status = d.svc.status()
        idle = [d.search_ms(1000 + i) for i in range(queries)]
        idle_embed = [d.embed_ms(1000 + i) for i in range(queries)]
        pool = d.svc.pool.stats()
    files_seen = status.get("files_indexed", 0) + status.get("files_skipped", 0) + status.get("files_failed", 0)
    return {"corpus": str(source or f"{files} stdlib files"), "files": files_seen, "chunks": status.get("chunks"),
            "workers": len(pool["workers"]), "query_encoder": getattr(cfg.pool, "query_encoder", None),
            "nice": getattr(cfg.pool, "nice", None), "index_wall_s": round(wall, 1),
            "files_per_s": round(files_seen / wall, 2), "chunks_per_s": round(status.get("chunks", 0) / wall, 2),
            "stage_share_pct": {k: v.get("share_pct") for k, v in status.get("stages", {}).items()},
            "busy_queries": len(busy), "busy_p50_ms": _pct(busy, 50), "busy_p95_ms": _pct(busy, 95),
            "idle_p50_ms": _pct(idle, 50), "idle_p95_ms": _pct(idle, 95),
            "embed_busy_p50_ms": _pct(busy_embed, 50), "embed_busy_p95_ms": _pct(busy_embed, 95),
            "embed_idle_p50_ms": _pct(idle_embed, 50), "embed_idle_p95_ms": _pct(idle_embed, 95)}


# ---------------------------------------------------------------- footprint

IMPORT_STEPS = ("numpy", "tokenizers", "zmq", "msgpack", "psutil", "structlog", "ctranslate2", "chromadb",
                "semdexd.app.service")


def import_costs() -> list[dict[str, Any]]:
    """RSS after importing each of IMPORT_STEPS in turn, in a fresh interpreter (cumulative);
    structlog and chromadb the way the daemon imports them (`semdexd.system.lean`)."""
    code = ("import importlib, sys, json\nout = []\n"
            "def rss():\n    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
            "out.append(['python', rss()])\nfrom semdexd.system import lean\n"
            "lean_import = {'structlog': lean.import_structlog, 'chromadb': lean.import_chromadb}\n"
            "for m in sys.argv[1:]:\n"
            "    lean_import.get(m, lambda: importlib.import_module(m))(); out.append([m, rss()])\n"
            "out.append(['onnxruntime loaded', int('onnxruntime' in sys.modules)])\nprint(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code, *IMPORT_STEPS], capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout)
    table, before = [], 0
    for name, kb in rows[:-1]:
        table.append({"import": name, "rss_mb": round(kb / 1024, 1), "adds_mb": round((kb - before) / 1024, 1)})
        before = kb
    table.append({"import": "onnxruntime imported", "value": bool(rows[-1][1])})
    return table


def footprint(cfg: Config, files: int, idle_s: float) -> dict[str, Any]:
    with Daemon(cfg, files, idle_shutdown_s=idle_s) as d:
        with MemorySampler(0.5) as sampler:
            if not wait_until(lambda: not d.indexing(), 3600):
                raise RuntimeError("the index did not finish")
        indexed = memory()
        wait_until(lambda: d.svc.pool.stats().get("parked"), idle_s + 60)  # (an engine without parking: times out)
        wait_until(lambda: not psutil.Process().children(), 30)
        d.search_ms(0)
        parked = memory()
        first = d.search_ms(1)
        chunks = d.svc.status().get("chunks", 0)
    return {"files": files, "chunks": chunks, "idle_shutdown_s": idle_s, "indexing_peak": sampler.peak,
            "index_complete": indexed, "parked": parked, "search_ms_parked": round(first, 1),
            "imports": import_costs()}


# ---------------------------------------------------------------- soak


def soak(cfg: Config, files: int, minutes: float) -> dict[str, Any]:
    with Daemon(cfg, files) as d:
        if not wait_until(lambda: not d.indexing(), 3600):
            raise RuntimeError("the index did not finish")
        targets = sorted(d.corpus.glob("*.py"))
        edits = 0
        with MemorySampler(10.0) as sampler:
            end = time.monotonic() + minutes * 60
            while time.monotonic() < end:
                path = targets[edits % len(targets)]
                lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
                lines.insert((edits * 7) % max(1, len(lines)), f"# soak edit {edits}")
                path.write_text("\n".join(lines), encoding="utf-8")
                edits += 1
                time.sleep(1.0)  # the edit rate of the soak
            wait_until(lambda: not d.indexing(), 120)
        pool = d.svc.pool.stats()
    steady = [(t, m) for t, m in sampler.samples if t >= 60] or sampler.samples
    return {"minutes": minutes, "files": files, "edits": edits, "samples": len(sampler.samples),
            "rss_first_mb": steady[0][1] if steady else None, "rss_last_mb": steady[-1][1] if steady else None,
            "rss_peak_mb": sampler.peak["total_rss_mb"], "slope_mb_per_min": _slope(steady),
            "worker_restarts": pool["restarts"], "texts_embedded": pool["texts"]}


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) in MB per minute."""
    if len(points) < 2:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_m = statistics.fmean(m for _, m in points)
    den = sum((t - mean_t) ** 2 for t, _ in points)
    return round(60 * sum((t - mean_t) * (m - mean_m) for t, m in points) / den, 3) if den else None


# ---------------------------------------------------------------- batch independence


def batch_independence(cfg: Config) -> list[dict[str, Any]]:
    import numpy as np

    from semdexd.embed.encoder import Encoder
    from semdexd.embed.model import prepare_model

    out = []
    for compute_type in ("int8", "float32"):
        info = prepare_model(replace(cfg, model=replace(cfg.model, compute_type=compute_type)))
        encoder = Encoder(info)
        texts = stdlib_paragraphs(64)   # lengths from a few tokens to the model's limit
        alone = np.vstack([encoder.encode([t]).vectors for t in texts])
        rng = np.random.default_rng(0)
        cosines, diffs = [], []
        for size in (2, 4, 8):
            for _ in range(3):
                order = rng.permutation(len(texts))
                for i in range(0, len(order), size):
                    rows = order[i:i + size]
                    got = encoder.encode([texts[j] for j in rows]).vectors
                    cosines.append(float((got * alone[rows]).sum(1).min()))
                    diffs.append(float(np.abs(got - alone[rows]).max()))
        out.append({"compute_type": compute_type, "texts": len(texts), "min_cosine": round(min(cosines), 7),
                    "max_abs_diff": float(f"{max(diffs):.2e}")})
    return out


# ---------------------------------------------------------------- entry


def main(argv: list[str], cfg: Config) -> int:
    """``semdexd bench embed latency|footprint|soak|batch ...``; prints JSON figures; returns 0."""
    parser = argparse.ArgumentParser(prog="semdexd bench embed", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=("latency", "footprint", "soak", "batch"))
    parser.add_argument("--files", type=int, default=0, help="stdlib files in the corpus")
    parser.add_argument("--path", type=Path, default=None, help="latency: index a copy of this folder instead")
    parser.add_argument("--queries", type=int, default=40, help="latency: queries per phase")
    parser.add_argument("--idle-s", type=float, default=10.0, help="footprint: idle_shutdown_s")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak: duration")
    parser.add_argument("--workers", type=int, default=0, help="pool size (default: config)")
    args = parser.parse_args(argv)
    if args.workers:
        cfg = replace(cfg, pool=replace(cfg.pool, workers=args.workers))
    os.environ.setdefault("SEMDEX_WORKER_LOG_LEVEL", "warning")
    result: Any
    load = [round(x, 2) for x in os.getloadavg()]
    if args.name == "latency":
        result = latency(cfg, args.files or 120, args.queries, args.path)
    elif args.name == "footprint":
        result = footprint(cfg, args.files or 60, args.idle_s)
    elif args.name == "soak":
        result = soak(cfg, args.files or 30, args.minutes)
    else:
        result = batch_independence(cfg)
    print(json.dumps({"bench": args.name, "loadavg_before": load, "cpu_count": os.cpu_count(),
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()], "result": result}, indent=1))
    return 0
