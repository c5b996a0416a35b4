"""Issue 16 part 3: does a second ranking pass over the top candidates pay? (evaluation only)

Usage: ``XDG_CACHE_HOME=... .venv/bin/python scripts/rerank_eval.py [--k 30] [--threads 2]``

Reuses `semdexd bench quality`'s index (its work dir), gathers every dev query's hybrid
candidates with the product's `Searcher`, and re-scores the best ``k`` chunks of each query with

* ``colbert``: late interaction with the same CTranslate2 model: the mean over the query's token
  vectors (``last_hidden_state``, unit length, [CLS]/[SEP] left out) of their best cosine against
  the chunk's token vectors (computed on demand: a forward pass per candidate);
* ``static``: the same MaxSim over the model's input (word-piece) embeddings, no forward pass;
* ``windows``: the best cosine of the query vector against the chunk's windows of
  ``WINDOW_LINES`` non-empty lines (stride half of it), each pooled like a chunk.

A signal enters as ``score' = score + lam * (signal - best signal among the query's k)``: a
candidate loses in proportion to how far it is behind the best one on that signal (lam = 0 is
the product). lam is chosen on the TUNE halves (MRR@10 + recall@1, mean over sets, the worst set
counted twice, as `bench quality --tune`); the TEST halves are printed for lam = 0 and the chosen
lam, with the cost of computing each signal for one query's k candidates (p50/p95 ms).

Measured (2026-12-04, all-MiniLM-L6-v2 int8, 3,589 chunks, k = 30, one thread, shared 2-core
machine; TEST halves R@1 / R@10 / MRR@10, lam 0 = the product, equal to `bench quality`'s):

| signal (lam chosen on tune) | docstrings (117) | identifiers (78) | docs (53) | cost p50 / p95 |
|---|---|---|---|---|
| none (product) | 0.333 / 0.598 / 0.435 | 0.692 / 0.962 / 0.804 | 0.302 / 0.585 / 0.415 | 0 |
| colbert (0.5) | 0.350 / 0.641 / 0.459 | 0.731 / 0.974 / 0.830 | 0.283 / 0.585 / 0.400 | 569 / 688 ms |
| static (0.1) | 0.325 / 0.615 / 0.437 | 0.705 / 0.962 / 0.813 | 0.321 / 0.585 / 0.428 | 11 / 17 ms |
| windows (0.05) | 0.342 / 0.598 / 0.440 | 0.718 / 0.962 / 0.819 | 0.283 / 0.547 / 0.385 | 1,132 ms uncached |

Not kept: colbert gains 2-4 queries on two sets and loses 1 on docs, at 11-14x the 50 ms budget
on demand (its token vectors cached would be ~57 KB a chunk at int8, ~400 MB at 7k chunks);
static is within one query per set (noise) for +11 ms; windows loses on docs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semdexd.bench import quality
from semdexd.bench.devsets import load, materialise
from semdexd.config import load_config
from semdexd.embed.encoder import Encoder, normalize, pool_hidden
from semdexd.embed.model import ModelInfo, model_ids, prepare_model
from semdexd.search import SearchRequest, scoring
from semdexd.search.searcher import ordered_groups
from semdexd.search.terms import tokens

WINDOW_LINES = 4
LAMS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 4.0, 8.0)


class Tokens:
    """Token vectors and window vectors from the model the index was built with."""

    def __init__(self, info: ModelInfo, threads: int) -> None:
        self.info = info
        self.encoder = Encoder(info, threads=threads)

    def token_vectors(self, text: str, prefix: str) -> np.ndarray:
        ids = model_ids(self.encoder._tokenizer, [prefix + text], self.info.max_tokens)[0]
        hidden = np.asarray(self.encoder._model.forward_batch([ids]).last_hidden_state, dtype=np.float32)[0]
        return normalize(hidden[1:-1] if len(ids) > 2 else hidden)

    def static_vectors(self, text: str, prefix: str) -> np.ndarray:
        if not hasattr(self, "_static"):
            import json

            from semdexd.embed.convert import load_weights
            assert self.info.source_dir is not None
            kind = json.loads((self.info.source_dir / "config.json").read_text())["model_type"]
            weights = load_weights(self.info.source_dir, kind)
            self._static = normalize(next(v for k, v in weights.items() if k.endswith("word_embeddings.weight")))
        ids = model_ids(self.encoder._tokenizer, [prefix + text], self.info.max_tokens)[0]
        return np.asarray(self._static[ids[1:-1] if len(ids) > 2 else ids])

    def windows(self, text: str) -> np.ndarray:
        lines = [line for line in text.split("\n") if line.strip()] or [text]
        step = max(1, WINDOW_LINES // 2)
        parts = ["\n".join(lines[i:i + WINDOW_LINES]) for i in range(0, max(1, len(lines) - step), step)]
        return self.encoder.encode([self.info.passage_prefix + p for p in parts]).vectors

    def query_vector(self, query: str) -> np.ndarray:
        return self.encoder.encode([self.info.query_prefix + query]).vectors[0]


def base_scores(a: quality.Asked, t: scoring.Tuning) -> dict[str, float]:
    rows = a.found.rows
    evidence = scoring.query_evidence((a.found.signals[c] for c in rows), t, len(set(tokens(a.query))))
    return {c: scoring.score(a.found.signals[c], "hybrid", t, evidence) for c in rows}


def rank_of(a: quality.Asked, scores: dict[str, float], t: scoring.Tuning, corpus: Path) -> int | None:
    assert a.item is not None
    groups = ordered_groups(a.found.rows, scores, SearchRequest(query=a.query, limit=10, mode="hybrid"), t)
    return next((n for n, g in enumerate(groups, 1) if quality._relevant(g, a.item, corpus)), None)


def fused(base: dict[str, float], top: list[str], signal: dict[str, float], lam: float) -> dict[str, float]:
    best = max(signal[c] for c in top)
    out = dict(base)
    floor = min(base[c] for c in top)
    for c in base:
        if c not in signal:
            out[c] = min(out[c], floor - lam - 1e-6)  # below every re-scored candidate
    for c in top:
        out[c] = base[c] + lam * (signal[c] - best)
    return out


def figures(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {"recall@1": round(sum(r == 1 for r in ranks) / n, 3), "recall@10": round(sum(r is not None for r in ranks) / n, 3),
            "mrr@10": round(sum(1 / r for r in ranks if r) / n, 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="queries per set and half (0: all)")
    args = ap.parse_args()
    cfg = load_config(None)
    work, _ = quality.work_dir(False, False)
    corpus = work / "corpus"
    items, _unanswerable = load(False)
    items = materialise(items, corpus)
    svc = quality._index(cfg, corpus, work)
    try:
        asked, search_ms = quality.gather(svc, items, [])
        info = prepare_model(cfg)
    finally:
        svc.stop()
    print(f"{len(asked)} queries; hybrid search p50 {search_ms} ms", file=sys.stderr)
    t = scoring.DEFAULT
    enc = Tokens(info, args.threads)
    halves: dict[tuple[str, str], list[quality.Asked]] = {}
    for a in asked:
        assert a.item is not None
        halves.setdefault((a.item.set, a.item.split), []).append(a)
    if args.limit:
        halves = {k: v[: args.limit] for k, v in halves.items()}
    names = ("colbert", "static", "windows")
    signals: dict[str, list[tuple[quality.Asked, dict[str, float], list[str], dict[str, float]]]] = {n: [] for n in names}
    cost: dict[str, list[float]] = {n: [] for n in names}
    window_cache: dict[str, np.ndarray] = {}
    done = 0
    for qs in halves.values():
        for a in qs:
            base = base_scores(a, t)
            top = sorted(base, key=lambda c: -base[c])[: args.k]
            start = time.perf_counter()
            q_tok = enc.token_vectors(a.query, info.query_prefix)
            col = {c: float((q_tok @ enc.token_vectors(a.found.rows[c].text, info.passage_prefix).T).max(axis=1).mean())
                   for c in top}
            cost["colbert"].append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            q_st = enc.static_vectors(a.query, info.query_prefix)
            sta = {c: float((q_st @ enc.static_vectors(a.found.rows[c].text, info.passage_prefix).T).max(axis=1).mean())
                   for c in top} if len(q_st) else dict.fromkeys(top, 0.0)
            cost["static"].append(1000 * (time.perf_counter() - start))
            signals["static"].append((a, base, top, sta))
            start = time.perf_counter()
            q_vec = enc.query_vector(a.query)
            fresh = [c for c in top if c not in window_cache]
            for c in fresh:
                window_cache[c] = enc.windows(a.found.rows[c].text)
            win = {c: float((window_cache[c] @ q_vec).max()) for c in top}
            if fresh == top:  # cost of an uncached query: every window embedded now
                cost["windows"].append(1000 * (time.perf_counter() - start))
            signals["colbert"].append((a, base, top, col))
            signals["windows"].append((a, base, top, win))
            done += 1
            if done % 50 == 0:
                print(f"{done} queries", file=sys.stderr, flush=True)
    report(signals, cost, corpus, t)
    return 0


def report(signals: dict[str, list[Any]], cost: dict[str, list[float]], corpus: Path, t: scoring.Tuning) -> None:
    for name, rows in signals.items():
        def evaluate(lam: float, split: str, set_name: str, rows: list[Any] = rows) -> dict[str, float]:
            return figures([rank_of(a, fused(base, top, sig, lam), t, corpus) for a, base, top, sig in rows
                            if a.item.split == split and a.item.set == set_name])

        def objective(lam: float, evaluate: Callable[[float, str, str], dict[str, float]] = evaluate) -> float:
            margins = []
            for s in quality.SETS:
                now, zero = evaluate(lam, "tune", s), evaluate(0.0, "tune", s)
                margins.append(now["mrr@10"] - zero["mrr@10"] + now["recall@1"] - zero["recall@1"])
            return statistics.mean(margins) + min(margins)

        tuned = {lam: objective(lam) for lam in LAMS}
        lam = max(LAMS, key=lambda x: (round(tuned[x], 6), -x))
        ms = sorted(cost[name])
        p50 = statistics.median(ms) if ms else float("nan")
        p95 = ms[int(0.95 * (len(ms) - 1))] if ms else float("nan")
        print(f"\n{name}: tune-half objective by lam {', '.join(f'{k}: {v:+.4f}' for k, v in tuned.items())}; chosen {lam}")
        print(f"{name}: cost per query (k candidates, on demand) p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        print("| set | half | lam 0: R@1 / R@10 / MRR@10 | chosen lam: R@1 / R@10 / MRR@10 |")
        for s in quality.SETS:
            for split in ("tune", "test"):
                z, c = evaluate(0.0, split, s), evaluate(lam, split, s)
                print(f"| {s} | {split} | {z['recall@1']} / {z['recall@10']} / {z['mrr@10']} | "
                      f"{c['recall@1']} / {c['recall@10']} / {c['mrr@10']} |")


if __name__ == "__main__":
    raise SystemExit(main())
