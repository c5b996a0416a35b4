"""`semdexd bench embed [--json] [--quick] [--chunks N] [--runs N]`: figures for the embedding engine
(and `semdexd bench embed latency|footprint|soak|batch`: see `semdexd.bench.engine`).

Corpus: real text, the ``.py`` files of this interpreter's standard library cut into ~160-token
pieces at blank lines (a splitter of its own, so the figures do not move when the chunker does).
For each configuration tried (workers x threads, batch size, length-sorted or not, compute type)
it embeds the whole corpus on a fresh pool (cache off) ``runs`` times and reports the medians:
chunks/s, tokens/s, tokens/s per core (wall: divided by the cores the shape may use), tokens per
worker CPU-second (less sensitive to other load on a shared machine), padding (tokens computed /
real tokens), peak RSS per worker, the CPU the daemon side spends per chunk (tokenizing for the
sort, broker), and the model's achieved GFLOP/s (per wall second and per worker CPU-second) next to a plain numpy float32 matmul measured in the same
run (1 thread and all threads). Then query latency p50/p95, idle and while a bulk job runs, and
worker start time (spawn -> model loaded -> ready).

FLOPs are counted per real token as ``2 * layer_params + 4 * layers * hidden * seq_len``
(`ModelInfo.flops_per_token`): the dense matmuls plus attention scores and mixing; embeddings,
layer norms, softmax and GELU are left out, and padding is not counted as useful work.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from semdexd.bench.common import Sampler
from semdexd.bench.common import percentile as _pct
from semdexd.config import Config

TARGET_TOKENS = 160
MATMUL_CODE = """
import time, numpy as np
n = 1024
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
a @ b
best = 0.0
for _ in range(5):
    t = time.perf_counter(); a @ b; t = time.perf_counter() - t
    best = max(best, 2 * n ** 3 / t / 1e9)
print(best)
"""


@dataclass(frozen=True)
class Shape:
    """One pool configuration to measure."""

    workers: int
    threads: int
    batch: int
    sorted: bool = True
    compute_type: str = "int8"

    @property
    def label(self) -> str:
        order = "sorted" if self.sorted else "unsorted"
        return f"{self.workers}x{self.threads} b{self.batch} {order} {self.compute_type}"


# ---------------------------------------------------------------- corpus


def stdlib_chunks(count_tokens: Any, limit: int, max_tokens: int, target: int = TARGET_TOKENS) -> list[str]:
    """``limit`` chunks of ~``target`` tokens (never above ``max_tokens``) from stdlib .py files,
    spread over the library (every k-th chunk of the sorted file list), deterministic."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.stat().st_size > 2000)
    chunks: list[str] = []
    for file in files:
        chunks.extend(_split_file(file.read_text(encoding="utf-8", errors="replace"), count_tokens, target, max_tokens))
        if len(chunks) > limit * 8:
            break
    step = max(1, len(chunks) // limit)
    return chunks[::step][:limit]


def _split_file(text: str, count_tokens: Any, target: int, max_tokens: int) -> list[str]:
    blocks = [b.strip("\n") for b in text.split("\n\n") if b.strip()]
    sizes = count_tokens(blocks) if blocks else []
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for block, n in zip(blocks, sizes):
        if n > max_tokens:
            continue  # an oversized block would be truncated: leave it out of the corpus
        if current and size + n > target:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(block)
        size += n
    if current and size >= target // 2:
        chunks.append("\n\n".join(current))
    return [c for c in chunks if count_tokens([c])[0] <= max_tokens]


# ---------------------------------------------------------------- measuring


def matmul_gflops(threads: int) -> float:
    """Best-of-5 GFLOP/s of a 1024^3 float32 numpy matmul in a fresh process with ``threads`` BLAS threads."""
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    out = subprocess.run([sys.executable, "-c", MATMUL_CODE], env=env, capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip()), 1)


class PeakRss(Sampler):
    """Peak RSS (MB) of this process (``self_mb``) and of each of its children (``peaks``),
    sampled every 50 ms while active."""

    def __init__(self) -> None:
        super().__init__(0.05)
        self.self_mb = 0.0
        self.peaks: dict[int, float] = {}
        self._me = psutil.Process()

    def sample(self) -> None:
        self.self_mb = max(self.self_mb, self._me.memory_info().rss / 2**20)
        for child in self._me.children():
            try:
                rss = child.memory_info().rss / 2**20
            except psutil.Error:
                continue
            self.peaks[child.pid] = max(self.peaks.get(child.pid, 0.0), rss)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (children excluded)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _bench_cfg(cfg: Config, shape: Shape, runtime: Path) -> Config:
    pool = replace(cfg.pool, workers=shape.workers, threads_per_worker=shape.threads, batch_size=shape.batch,
                   cache_mb=0, max_texts_per_worker=10**9)
    return replace(cfg, pool=pool, model=replace(cfg.model, compute_type=shape.compute_type),
                   paths=replace(cfg.paths, runtime_dir=runtime))


def _embed_all(pool: Any, texts: list[str], shape: Shape) -> None:
    if shape.sorted:
        pool.embed(texts)
        return
    # Unsorted: one call per batch, in corpus order, enough callers to keep every worker busy.
    groups = [texts[i:i + shape.batch] for i in range(0, len(texts), shape.batch)]
    with ThreadPoolExecutor(max_workers=2 * shape.workers) as callers:
        list(callers.map(pool.embed, groups))


def _start_pool(cfg: Config, info: Any) -> tuple[Any, float]:
    from semdexd.embed.pool import EmbedPool

    pool = EmbedPool(cfg, info)
    start = time.perf_counter()
    pool.start()
    deadline = time.monotonic() + 300
    while sum(w["state"] == "idle" for w in pool.stats()["workers"]) < cfg.worker_count(info.footprint):
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start")
        time.sleep(0.01)  # waiting for worker start-up with a deadline; bench only
    return pool, time.perf_counter() - start


def measure(cfg: Config, shape: Shape, texts: list[str], tokens: list[int], runs: int) -> dict[str, Any]:
    """Median figures of ``runs`` passes of ``texts`` through a fresh pool shaped like ``shape``."""
    from semdexd.embed.model import prepare_model

    runtime = Path(tempfile.mkdtemp(prefix="sxb", dir="/tmp"))
    bench_cfg = _bench_cfg(cfg, shape, runtime)
    info = prepare_model(bench_cfg)
    useful_flops = sum(n * info.flops_per_token(n) for n in tokens)
    pool, start_s = _start_pool(bench_cfg, info)
    walls, paddings, worker_cpu, daemon_cpu = [], [], [], []
    try:
        pool.embed(texts[: shape.batch * shape.workers])  # warm-up outside the timing
        with PeakRss() as rss:
            for _ in range(runs):
                before = pool.stats()
                pids = [w["pid"] for w in before["workers"]]
                cpu0, own0, t0 = _cpu_seconds(pids), time.process_time(), time.perf_counter()
                _embed_all(pool, texts, shape)
                walls.append(time.perf_counter() - t0)
                worker_cpu.append(_cpu_seconds(pids) - cpu0)
                daemon_cpu.append(time.process_time() - own0)
                after = pool.stats()
                real = after["tokens"] - before["tokens"]
                padded = after["padded_tokens"] - before["padded_tokens"]
                paddings.append(padded / real if real else 1.0)
    finally:
        pool.close()
        shutil.rmtree(runtime, ignore_errors=True)
    wall, cpu = statistics.median(walls), statistics.median(worker_cpu)
    cores = min(shape.workers * shape.threads, os.cpu_count() or 1)
    return {
        "config": shape.label, "workers": shape.workers, "threads": shape.threads, "batch": shape.batch,
        "sorted": shape.sorted, "compute_type": shape.compute_type, "runs": runs,
        "chunks_per_s": round(len(texts) / wall, 2), "tokens_per_s": round(sum(tokens) / wall, 1),
        "tokens_per_s_per_core": round(sum(tokens) / wall / cores, 1),
        "padding_ratio": round(statistics.median(paddings), 3),
        "worker_cpu_s_per_chunk": round(cpu / len(texts), 4),
        "tokens_per_worker_cpu_s": round(sum(tokens) / cpu, 1) if cpu else None,
        "model_gflops_per_worker_cpu_s": round(useful_flops / cpu / 1e9, 2) if cpu else None,
        "daemon_cpu_s_per_chunk": round(statistics.median(daemon_cpu) / len(texts), 5),
        "model_gflops": round(useful_flops / wall / 1e9, 2),
        "model_gflops_per_core": round(useful_flops / wall / 1e9 / cores, 2),
        "peak_rss_mb_per_worker": round(max(rss.peaks.values(), default=0.0), 1),
        "worker_start_s": round(start_s, 2), "wall_s": [round(w, 2) for w in walls],
    }


def query_latency(cfg: Config, shape: Shape, texts: list[str], queries: int) -> dict[str, Any]:
    """Query (priority) latency p50/p95 in ms: on an idle pool, then while ``texts`` are embedded."""
    from semdexd.embed.model import prepare_model

    runtime = Path(tempfile.mkdtemp(prefix="sxq", dir="/tmp"))
    bench_cfg = _bench_cfg(cfg, shape, runtime)
    pool, _ = _start_pool(bench_cfg, prepare_model(bench_cfg))
    asks = [f"how does {w} work in python?" for w in ("heapq", "asyncio", "json", "pathlib", "re", "zipfile")]

    def ask(i: int) -> float:
        t0 = time.perf_counter()
        pool.embed([f"{asks[i % len(asks)]} #{i}"], kind="query", priority=True)
        return (time.perf_counter() - t0) * 1000

    try:
        idle = [ask(i) for i in range(queries)]
        bulk = threading.Thread(target=pool.embed, args=(texts,))
        bulk.start()
        busy: list[float] = []
        while bulk.is_alive() and len(busy) < queries:
            busy.append(ask(queries + len(busy)))
            time.sleep(0.05)  # space the queries out over the bulk job
        bulk.join()
    finally:
        pool.close()
        shutil.rmtree(runtime, ignore_errors=True)
    return {"config": shape.label, "idle_p50_ms": _pct(idle, 50), "idle_p95_ms": _pct(idle, 95),
            "busy_p50_ms": _pct(busy, 50), "busy_p95_ms": _pct(busy, 95), "busy_queries": len(busy)}


# ---------------------------------------------------------------- the plan


def shapes(quick: bool) -> list[Shape]:
    """Configurations tried: pool shapes at batch 8, batch sizes and order on 2x1, float32."""
    cores = os.cpu_count() or 1
    pool_shapes = [Shape(1, 1, 8), Shape(cores, 1, 8)] + ([Shape(1, cores, 8)] if cores > 1 else [])
    if quick:
        return list(dict.fromkeys(pool_shapes + [Shape(cores, 1, 8, sorted=False)]))
    batches = [Shape(cores, 1, b) for b in (2, 4, 16, 32)]
    return list(dict.fromkeys(pool_shapes + batches + [Shape(cores, 1, 8, sorted=False),
                                                        Shape(cores, 1, 32, sorted=False),
                                                        Shape(cores, 1, 8, compute_type="float32")]))


def run(cfg: Config, quick: bool, chunks: int, runs: int, progress: Any = None) -> dict[str, Any]:
    """Measure everything; returns the JSON-able report."""
    from semdexd.embed.model import prepare_model
    from semdexd.embed.tokens import TokenCounter

    info = prepare_model(cfg)
    counter = TokenCounter(info)
    texts = stdlib_chunks(counter.count, chunks, info.max_tokens)
    tokens = counter.count(texts)
    report: dict[str, Any] = {
        "model": info.model_id, "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "corpus": {"source": "stdlib *.py", "chunks": len(texts), "tokens": sum(tokens),
                   "mean_tokens": round(sum(tokens) / len(tokens), 1), "max_tokens": max(tokens)},
        "flops_per_token_at_mean": round(info.flops_per_token(round(sum(tokens) / len(tokens))) / 1e6, 2),
        "numpy_matmul_gflops": {"1_thread": matmul_gflops(1), "all_threads": matmul_gflops(os.cpu_count() or 1)},
        "configs": [],
    }
    for shape in shapes(quick):
        result = measure(cfg, shape, texts, tokens, runs)
        report["configs"].append(result)
        if progress:
            progress(result)
    best = max(report["configs"], key=lambda r: r["chunks_per_s"])
    report["best"] = best["config"]
    best_shape = Shape(best["workers"], best["threads"], best["batch"], best["sorted"], best["compute_type"])
    report["query_latency"] = query_latency(cfg, best_shape, texts, 10 if quick else 20)
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _print_row(r: dict[str, Any]) -> None:
    print(f"{r['config']:<28} {r['chunks_per_s']:>8.2f} {r['tokens_per_s']:>9.0f} {r['tokens_per_s_per_core']:>9.0f} "
          f"{r['tokens_per_worker_cpu_s'] or 0:>9.0f} {r['padding_ratio']:>7.3f} {r['peak_rss_mb_per_worker']:>7.0f} "
          f"{r['model_gflops']:>7.1f} {r['model_gflops_per_worker_cpu_s'] or 0:>8.1f} {r['worker_start_s']:>6.2f}",
          flush=True)


def _print_report(report: dict[str, Any]) -> None:
    c = report["corpus"]
    print(f"\ncorpus: {c['chunks']} chunks, {c['tokens']} tokens (mean {c['mean_tokens']}, max {c['max_tokens']})"
          f"; model {report['model']}, ~{report['flops_per_token_at_mean']} MFLOP/token")
    mm = report["numpy_matmul_gflops"]
    print(f"numpy float32 matmul: {mm['1_thread']} GFLOP/s (1 thread), {mm['all_threads']} GFLOP/s (all threads)")
    q = report["query_latency"]
    print(f"query latency ({q['config']}): idle p50 {q['idle_p50_ms']} ms p95 {q['idle_p95_ms']} ms; "
          f"during bulk p50 {q['busy_p50_ms']} ms p95 {q['busy_p95_ms']} ms ({q['busy_queries']} queries)")
    print(f"best: {report['best']}; load average before {report['loadavg_before']}, after {report['loadavg_after']} "
          f"(other processes on this machine skew the figures)")


def main(argv: list[str], cfg: Config) -> int:
    """Entry point of ``semdexd bench embed``; prints a table (or JSON with --json); returns 0.
    ``semdexd bench embed latency|footprint|soak|batch ...`` runs `semdexd.bench.engine`."""
    if argv and argv[0] in ("latency", "footprint", "soak", "batch"):
        from semdexd.bench import engine

        logging.getLogger().setLevel(logging.WARNING)
        return engine.main(argv, cfg)
    parser = argparse.ArgumentParser(prog="semdexd bench embed", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="fewer chunks and configurations (~1 min)")
    parser.add_argument("--chunks", type=int, default=0, help="corpus size (default 128, quick 64)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (median)")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)        # worker start/stop events would drown the table
    os.environ.setdefault("SEMDEX_WORKER_LOG_LEVEL", "warning")
    chunks = args.chunks or (64 if args.quick else 128)
    if not args.json:
        print(f"{'config':<28} {'chunks/s':>8} {'tokens/s':>9} {'tok/s/core':>9} {'tok/cpu-s':>9} {'padding':>7} "
              f"{'rss_mb':>7} {'GFLOP/s':>7} {'GF/cpu-s':>8} {'start':>6}", flush=True)
    report = run(cfg, args.quick, chunks, max(1, args.runs), progress=None if args.json else _print_row)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(report)
    return 0
