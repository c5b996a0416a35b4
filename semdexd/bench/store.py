"""`semdexd bench store [--json] [--real N] [--sizes 10000,100000] [--queries N]`: the vector store.

Vectors are real: standard-library chunks embedded by the configured model (through the pool and
its persistent cache, so a second run costs nothing). Sizes beyond the real count are filled with
perturbed copies of real vectors (v + noise, renormalised, cosine ~0.9 to their source): this keeps
the real data's clusters and near-duplicates, which is what makes approximate search hard; it is
not a substitute for a real corpus of that size, and the figures say which rows are augmented.

Per size: add throughput; HNSW recall@10 against exact search (numpy dot products over every
vector) and query latency, for several ``ef_search`` values; and a selective folder filter (1% of
the chunks) three ways: Chroma ``where`` on the ancestor-folder list, Chroma ``ids=`` with
candidates from the manifest, and exact dot products over the candidates' vectors fetched by id.
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

import numpy as np

from semdexd.bench.common import percentile
from semdexd.config import Config

FOLDERS = 100       # synthetic folder tree: chunk i lives in folder i % FOLDERS
EF_VALUES = (100, 200, 400, 800)


def python_chunks(count_tokens: Any, limit: int, max_tokens: int) -> list[str]:
    """Up to ``limit`` distinct ~160-token chunks of real Python source: the standard library and
    the installed packages (site-packages), in a fixed order."""
    import sysconfig

    from semdexd.bench.embed import TARGET_TOKENS, _split_file

    seen: dict[str, None] = {}
    for key in ("stdlib", "purelib"):
        for file in sorted(Path(sysconfig.get_paths()[key]).rglob("*.py")):
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for chunk in _split_file(text, count_tokens, TARGET_TOKENS, max_tokens):
                seen.setdefault(chunk)
            if len(seen) >= limit:
                return list(seen)[:limit]
    return list(seen)


def real_vectors(cfg: Config, count: int) -> np.ndarray:
    from semdexd.embed.model import prepare_model
    from semdexd.embed.pool import EmbedPool
    from semdexd.embed.tokens import TokenCounter

    info = prepare_model(cfg)
    texts = python_chunks(TokenCounter(info).count, count, info.max_tokens)
    run = replace(cfg.paths, runtime_dir=Path(tempfile.mkdtemp(prefix="sxs", dir="/tmp")))
    pool = EmbedPool(replace(cfg, paths=run), info)
    pool.start()
    try:
        out: list[Any] = []
        for start in range(0, len(texts), 2000):  # bounded memory in the broker
            out += pool.embed(texts[start:start + 2000])
    finally:
        pool.close()
    return np.stack([v for v in out if isinstance(v, np.ndarray)]).astype(np.float32)


def augment(real: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if size <= len(real):
        return real[:size]
    extra = size - len(real)
    base = real[rng.integers(0, len(real), extra)]
    noise = rng.standard_normal(base.shape).astype(np.float32) * (0.45 / np.sqrt(real.shape[1]))
    mixed = base + noise
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return np.concatenate([real, mixed])


def measure_size(vectors: np.ndarray, queries: np.ndarray, work: Path) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    from semdexd.store.vectors import ancestors

    client = chromadb.PersistentClient(path=str(work), settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("bench", embedding_function=None,
                                   configuration={"hnsw": {"space": "cosine", "ef_search": 100}})
    ids = [f"c{i}" for i in range(len(vectors))]
    metas: list[Any] = [{"dirs": ancestors(f"/home/u/notes/f{i % FOLDERS:03d}/file{i}.md")} for i in range(len(vectors))]
    start = time.perf_counter()
    for s in range(0, len(ids), 5000):
        col.add(ids=ids[s:s + 5000], embeddings=vectors[s:s + 5000], metadatas=metas[s:s + 5000])
    add_s = time.perf_counter() - start
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    out: dict[str, Any] = {"size": len(vectors), "add_per_s": round(len(vectors) / add_s, 1), "ef": {}}
    for ef in EF_VALUES:
        col.modify(configuration={"hnsw": {"ef_search": ef}})
        client = _reopen(work)  # Chroma applies ef_search only to a freshly loaded index
        col = client.get_collection("bench", embedding_function=None)
        recall, lat = [], []
        for qi, q in enumerate(queries):
            t = time.perf_counter()
            got = col.query(query_embeddings=q[None, :], n_results=10, include=[])["ids"][0]
            lat.append(1000 * (time.perf_counter() - t))
            truth = {f"c{j}" for j in exact[qi]}
            recall.append(len(truth & set(got)) / 10)
        out["ef"][ef] = {"recall@10": round(statistics.mean(recall), 4),
                         "p50_ms": percentile(lat, 50, 2), "p95_ms": percentile(lat, 95, 2)}
    out["filter"] = measure_filters(col, vectors, queries)
    return out


def _reopen(work: Path) -> Any:
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import Settings

    SharedSystemClient.clear_system_cache()
    return chromadb.PersistentClient(path=str(work), settings=Settings(anonymized_telemetry=False))


def measure_filters(col: Any, vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    """One folder = 1% of the chunks; three ways to search only inside it."""
    folder = "/home/u/notes/f007"
    members = np.arange(7, len(vectors), FOLDERS)
    cand = [f"c{i}" for i in members]
    ways: dict[str, list[float]] = {"where_contains": [], "ids_prefilter": [], "exact_over_fetched": []}
    agree = 0
    for q in queries[:50]:
        t = time.perf_counter()
        a = col.query(query_embeddings=q[None, :], n_results=10, where={"dirs": {"$contains": folder}},
                      include=[])["ids"][0]
        ways["where_contains"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        b = col.query(query_embeddings=q[None, :], n_results=10, ids=cand, include=[])["ids"][0]
        ways["ids_prefilter"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        got = col.get(ids=cand, include=["embeddings"])
        m = np.asarray(got["embeddings"], dtype=np.float32)
        top = np.argsort(-(m @ q))[:10]
        c = [got["ids"][i] for i in top]
        ways["exact_over_fetched"].append(1000 * (time.perf_counter() - t))
        agree += int(set(a) == set(c)) + int(set(b) == set(c))
    out: dict[str, Any] = {k: {"p50_ms": percentile(v, 50, 2), "p95_ms": percentile(v, 95, 2)} for k, v in ways.items()}
    out["candidates"] = len(cand)
    out["top10_agreement_with_exact"] = round(agree / (2 * min(50, len(queries))), 3)
    return out


def run(cfg: Config, real: int, sizes: list[int], queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    vectors = real_vectors(cfg, real + queries)
    held_out, corpus = vectors[:queries], vectors[queries:]
    results: dict[str, Any] = {"real_vectors": len(corpus), "queries": len(held_out), "sizes": []}
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix="semdex-store-"))
        try:
            row = measure_size(augment(corpus, size, rng), held_out, work)
            row["augmented"] = size > len(corpus)
            results["sizes"].append(row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str], cfg: Config) -> int:
    ap = argparse.ArgumentParser(prog="semdexd bench store", description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=int, default=4000, help="real chunks to embed (cached after the first run)")
    ap.add_argument("--sizes", default="10000,100000", help="collection sizes to measure")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = run(cfg, args.real, sizes, args.queries)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{results['real_vectors']} real vectors, {results['queries']} held-out real queries")
    for r in results["sizes"]:
        tag = " (augmented)" if r["augmented"] else ""
        print(f"size {r['size']}{tag}: add {r['add_per_s']}/s")
        for ef, m in r["ef"].items():
            print(f"  ef_search {ef}: recall@10 {m['recall@10']}  p50 {m['p50_ms']} ms  p95 {m['p95_ms']} ms")
        for way, m in r["filter"].items():
            print(f"  filter {way}: {m}")
    return 0
