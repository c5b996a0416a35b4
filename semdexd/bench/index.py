"""`semdexd bench index PATH [--json] [--edits N] [--workers N]`: figures for the whole pipeline.

A copy of PATH is indexed cold into a temp data dir by the real Service (model, pool, Chroma,
manifest, watcher); then N files get a one-line edit each, one at a time, through the watcher.
Printed: files/s, chunks/s, tokens/s, stage shares, tokens embedded / tokens in the corpus,
chunks re-embedded per one-line edit, save->searchable latency p50/p95, peak RSS of the daemon
and of the workers, and the ratio that matters most: full index wall time / pure embedding time
of the same texts (measured in the same run on a fresh pool without cache).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from semdexd.bench.common import bench_config, until_idle, wait_until
from semdexd.bench.embed import PeakRss
from semdexd.config import Config


def _edit_files(svc: Any, corpus: Path, count: int) -> tuple[list[float], list[int]]:
    """One-line edit in ``count`` files, one at a time; (save->searchable seconds, chunks re-embedded)."""
    latencies, reembedded = [], []
    rows = (svc.manifest.file(p) for p in sorted(svc.manifest.all_paths()))
    candidates = [r.path for r in rows if r is not None and r.kind.searchable and r.chunks >= 3]
    for path in candidates[:count]:
        p = Path(path)
        lines = p.read_text(encoding="utf-8", errors="replace").split("\n")
        lines.insert(len(lines) // 2, f"# benchmark edit {time.time_ns()}")
        before = svc.metrics.snapshot()["counters"].get("chunks_embedded", 0)
        start = time.perf_counter()
        p.write_text("\n".join(lines), encoding="utf-8")

        def searchable(path: str = path, p: Path = p) -> bool:
            row = svc.manifest.file(path)
            return row is not None and row.mtime_ns == p.stat().st_mtime_ns and svc.state() == "idle"

        if wait_until(searchable, 60, 0.01):
            latencies.append(time.perf_counter() - start)
            reembedded.append(svc.metrics.snapshot()["counters"].get("chunks_embedded", 0) - before)
    return latencies, reembedded


def _pure_embed_seconds(cfg: Config, texts: list[str]) -> float:
    """Wall time to embed ``texts`` on a fresh pool of the same size, cache off."""
    from semdexd.embed.model import prepare_model
    from semdexd.embed.pool import EmbedPool

    bare = replace(cfg, pool=replace(cfg.pool, cache_mb=0),
                   paths=replace(cfg.paths, runtime_dir=Path(tempfile.mkdtemp(prefix="sxe", dir="/tmp"))))
    pool = EmbedPool(bare, prepare_model(bare))
    pool.start()
    try:
        pool.embed(texts[:8])  # warm up (model load) outside the timing
        start = time.perf_counter()
        pool.embed(texts)
        return time.perf_counter() - start
    finally:
        pool.close()


def run(cfg: Config, source: Path, edits: int, workers: int | None) -> dict[str, Any]:
    from semdexd.app.service import Service

    work = Path(tempfile.mkdtemp(prefix="semdex-bench-"))
    corpus = work / "corpus"
    shutil.copytree(source, corpus, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    bcfg = bench_config(cfg, [corpus], work, **({} if workers is None else {"workers": workers}))
    svc = Service(bcfg)
    try:
        with PeakRss() as rss:
            start = time.perf_counter()
            svc.start()
            until_idle(svc, 3600)
            wall = time.perf_counter() - start
            status = svc.status()
            latencies, reembedded = _edit_files(svc, corpus, edits)
        rows = [c for p in svc.manifest.all_paths() for c in svc.manifest.chunks_of(p)]
        texts = [c.text for c in rows]
        from semdexd.embed.tokens import TokenCounter
        corpus_tokens = sum(TokenCounter(svc.info).count(texts)) if texts else 0
        pool_stats = status.get("pool", {})
    finally:
        svc.stop()
    pure = _pure_embed_seconds(bcfg, texts) if texts else 0.0
    shutil.rmtree(work, ignore_errors=True)
    files = status["files_indexed"] + status["files_skipped"] + status["files_failed"]
    return {
        "corpus": str(source), "files": files, "files_indexed": status["files_indexed"],
        "chunks": status["chunks"], "corpus_tokens": corpus_tokens, "workers": bcfg.worker_count(svc.info.footprint),
        "index_wall_s": round(wall, 2),
        "files_per_s": round(files / wall, 2), "chunks_per_s": round(status["chunks"] / wall, 2),
        "tokens_per_s": round(corpus_tokens / wall, 1),
        "stage_share_pct": {k: v["share_pct"] for k, v in status["stages"].items()},
        "tokens_embedded_over_corpus": round(pool_stats.get("tokens", 0) / corpus_tokens, 3) if corpus_tokens else None,
        "pure_embed_s": round(pure, 2),
        "index_wall_over_pure_embed": round(wall / pure, 3) if pure else None,
        "edits": len(latencies),
        "chunks_reembedded_per_edit": statistics.median(reembedded) if reembedded else None,
        "chunks_reembedded_max": max(reembedded) if reembedded else None,
        "save_to_searchable_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "save_to_searchable_p95_ms": round(1000 * sorted(latencies)[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
        "peak_rss_daemon_mb": round(rss.self_mb, 1),
        "peak_rss_worker_mb": round(max(rss.peaks.values(), default=0.0), 1),
    }


def main(argv: list[str], cfg: Config) -> int:
    ap = argparse.ArgumentParser(prog="semdexd bench index", description=__doc__.splitlines()[0])
    ap.add_argument("path", type=Path, help="folder to index (copied to a temp dir first)")
    ap.add_argument("--edits", type=int, default=10, help="files to edit after the cold index")
    ap.add_argument("--workers", type=int, default=None, help="pool size (default: config)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.path.is_dir():
        ap.error(f"not a folder: {args.path}")
    result = run(cfg, args.path.resolve(), args.edits, args.workers)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v}")
    return 0
