"""How soon a cold index makes a tree findable, run as ``semdexd bench findable [options]``.

Copies up to ``--files`` real text files (.py .md .rst .txt .html, 1 kB to 256 kB, sorted by
path, modification times kept) from the SOURCE folders into a corpus, starts a real `Service`
on it with an empty index, and measures:

* ``words_s``: until every file is findable by an exact word of its own: every file has its
  row, none is queued, and a lexical search for a rare word of each of ``--probe`` sampled files
  ranks that file in its top 10 (the probes' hit rate is reported);
* ``meaning_s``: until the index is idle (every chunk has its vector), unless ``--words-only``;
* ``cpu_s``: CPU time of the process and its embedding workers until then (user + system);
* ``peak_rss_mb``: the largest RSS of the process plus its workers, sampled every 0.5 s;
* searches during the backlog: a hybrid search every ``--every`` seconds while indexing runs,
  its p50/p95 in ms.

Works against an older checkout too (run ``python -m semdexd.bench.findable`` with that checkout
first on PYTHONPATH and this file copied into it): there, words arrive with the vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from semdexd.bench.common import Sampler, bench_config, percentile
from semdexd.bench.engine import ASKS
from semdexd.config import Config

SUFFIXES = frozenset({".py", ".md", ".rst", ".txt", ".html"})
MIN_BYTES, MAX_BYTES = 1024, 256 * 1024
# A whole identifier or word (not the first 31 characters of a longer one, which no search finds).
WORD = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]{7,30}(?![A-Za-z0-9_])")


def build_corpus(into: Path, files: int, sources: list[Path]) -> int:
    """Copy up to ``files`` text files from ``sources`` into ``into`` (see the module doc)."""
    copied = 0
    for i, source in enumerate(sources):
        for folder, dirs, names in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(names):
                path = Path(folder, name)
                try:
                    if path.suffix not in SUFFIXES or path.is_symlink() or \
                            not MIN_BYTES <= path.stat().st_size <= MAX_BYTES:
                        continue
                    dest = into / f"{i}" / path.relative_to(source)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dest)
                except OSError:
                    continue
                copied += 1
                if copied >= files:
                    return copied
    return copied


def probes(corpus: Path, n: int, seed: int = 7) -> list[tuple[Path, str]]:
    """``n`` sampled files, each with a word found in it and in few other files."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    counts: dict[str, int] = {}
    words: dict[Path, set[str]] = {}
    for p in files:
        found = set(WORD.findall(p.read_text(errors="replace")))
        words[p] = found
        for w in found:
            counts[w] = counts.get(w, 0) + 1
    out = []
    for p in random.Random(seed).sample(files, min(n, len(files))):
        rare = sorted(words[p], key=lambda w: (counts[w], w))
        if rare and counts[rare[0]] <= 3:
            out.append((p, rare[0]))
    return out


class _Meter(Sampler):
    """CPU seconds (user + system) and peak RSS of this process and its children."""

    def __init__(self, every: float) -> None:
        super().__init__(every)
        self.me = psutil.Process()
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0.0

    def sample(self) -> None:
        rss = 0.0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, rss / 2**20)


def run(cfg: Config, corpus: Path, work: Path, n_probes: int, every: float, words_only: bool) -> dict[str, Any]:
    from semdexd.app.handlers import Api
    from semdexd.app.service import Service

    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    sample = probes(corpus, n_probes)
    bcfg = bench_config(cfg, [corpus], work, cache_mb=0)
    svc = Service(bcfg)
    search = Api(svc).handlers()["search"]
    busy_ms: list[float] = []

    def findable() -> float:
        """The share of the sampled files the daemon recorded (not left out by its ignore rules)
        that a lexical search for their rare word ranks in its top 10."""
        asked = [(path, word) for path, word in sample if svc.manifest.file(str(path)) is not None]
        hits = 0
        for path, word in asked:
            result = search({"query": word, "mode": "lexical", "limit": 10, "min_score": 0})
            hits += any(h["path"] == str(path) for h in result["hits"])
        return hits / len(asked) if asked else 1.0

    def words_in() -> bool:
        """The scan is done and no file waits to be read or written (files the ignore rules
        leave out are never queued)."""
        if not svc.ready.is_set() or svc.state() == "starting":
            return False
        return svc.indexer.queue.pending() + svc.indexer.queue.in_flight() == 0

    def searching_until(done: Callable[[], bool]) -> None:
        """A hybrid search every ``every`` seconds (once the index is open) until ``done()``."""
        next_search = 0.0
        while not svc.error and not done():
            if svc.ready.is_set() and svc.state() != "starting" and time.perf_counter() >= next_search:
                t = time.perf_counter()
                search({"query": f"{ASKS[len(busy_ms) % len(ASKS)]} {len(busy_ms)}", "mode": "hybrid", "limit": 10})
                busy_ms.append((time.perf_counter() - t) * 1000)
                next_search = time.perf_counter() + every
            time.sleep(0.05)  # bench only: polling the service with a deadline-free loop it ends itself

    try:
        with _Meter(0.5) as meter:
            start = time.perf_counter()
            svc.start()
            searching_until(words_in)
            words_s = time.perf_counter() - start
            rate = findable()
            meaning_s = None
            if not words_only:
                searching_until(lambda: svc.state() == "idle")
                meaning_s = time.perf_counter() - start
        meter.sample()
        cpu_s = sum(meter.cpu.values())
        counts = svc.manifest.counts()
    finally:
        svc.stop()
        shutil.rmtree(bcfg.paths.runtime_dir, ignore_errors=True)
    if svc.error:
        raise RuntimeError(svc.error)
    recorded = counts["indexed"] + counts["skipped"] + counts["failed"]
    return {"files": files, "files_recorded": recorded, "chunks": counts.get("chunks"), "chunks_awaiting_at_end": counts.get("chunks_awaiting", 0),
            "words_s": round(words_s, 1), "words_s_per_10k_files": round(words_s * 10_000 / max(1, recorded), 1),
            "probes": len(sample), "probes_found": round(rate, 3),
            "meaning_s": round(meaning_s, 1) if meaning_s is not None else None,
            "cpu_s": round(cpu_s, 1), "peak_rss_mb": round(meter.peak_rss, 1),
            "searches_during_backlog": len(busy_ms), "search_p50_ms": percentile(busy_ms, 50),
            "search_p95_ms": percentile(busy_ms, 95)}


def main(argv: list[str], cfg: Config) -> int:
    """``semdexd bench findable [--files N] [--words-only] SOURCE...``; prints JSON; returns 0."""
    parser = argparse.ArgumentParser(prog="semdexd bench findable", description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="folders to copy text files from")
    parser.add_argument("--files", type=int, default=2000, help="files in the corpus (default 2000)")
    parser.add_argument("--probe", type=int, default=50, help="files whose rare word is searched")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between searches while indexing")
    parser.add_argument("--words-only", action="store_true", help="stop once the words are in")
    parser.add_argument("--keep", type=Path, help="build the corpus here and keep it (reused when present)")
    args = parser.parse_args(argv)
    os.environ.setdefault("SEMDEX_WORKER_LOG_LEVEL", "warning")
    tmp = Path(tempfile.mkdtemp(prefix="semdex-findable-"))
    corpus = args.keep or tmp / "corpus"
    try:
        if not corpus.is_dir():
            build_corpus(corpus, args.files, [s.resolve() for s in args.sources])
        load = [round(x, 2) for x in os.getloadavg()]
        result = run(cfg, corpus.resolve(), tmp / "work", args.probe, args.every, args.words_only)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    flags = sorted({f for f in ("avx2", "avx512_vnni") if f in Path("/proc/cpuinfo").read_text()}) \
        if Path("/proc/cpuinfo").exists() else []
    print(json.dumps({"bench": "findable", "cpu_count": os.cpu_count(), "cpu_flags": flags,
                      "workers": cfg.pool.workers, "loadavg_before": load,
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()], "result": result}, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    from semdexd.config import load_config

    raise SystemExit(main(sys.argv[1:], load_config(None)))
