"""`semdexd bench quality [--quick] [--json] [--tune] [--fresh] [--target N]`: retrieval quality on the dev sets.

The dev sets (`devsets`: docstrings, identifiers, docs, multilingual, plus unanswerable queries) are written
into a corpus folder and indexed by the real Service. The corpus and index live in a persistent
work dir (``$XDG_CACHE_HOME/semdex/bench-quality``), so a second run re-embeds nothing; ``--fresh``
uses a temp dir instead. Each query's candidates are gathered once (hybrid: every list, every
signal) and ranked offline in each mode, with the current fusion ("after") and with the previous
weighted reciprocal-rank fusion ("before").

Printed, per set and mode, on the TEST half: recall@1, recall@10, MRR@10 and file@1 (the first hit
is in the right file); the score calibration (share of test queries whose right answer scores at
or above the cutoff; share of unanswerable queries whose best hit scores below it); the file-rank
variants (best chunk only vs best + a share of the next); the multilingual set per query language
and same- vs cross-language. ``--tune`` grid-searches the fusion
parameters on the TUNE halves and prints the best ones.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from semdexd.bench.common import bench_config, until_idle
from semdexd.bench.devsets import Item, languages, load, materialise
from semdexd.config import Config, ModelConfig
from semdexd.search import scoring
from semdexd.search.searcher import Candidates
from semdexd.search.terms import tokens

MODES = ("semantic", "lexical", "hybrid")
SETS = ("docstrings", "identifiers", "docs", "multilingual")
# The fusion before issue 9: weighted RRF (k=10) of the vector, phrase and BM25-words lists.
LEGACY_K, LEGACY_WEIGHTS = 10, {"semantic": 1.0, "phrase": 2.0, "words": 0.5}


@dataclass
class Asked:
    """One dev query with its gathered candidates."""

    item: Item | None          # None: unanswerable
    query: str
    found: Candidates


def work_dir(fresh: bool, quick: bool, target: int | None = None, model: str = "") -> tuple[Path, bool]:
    """Where the corpus and its index live: one folder per set size, chunk target and model (a
    start removes the indexes of other models beside its own: models kept apart stay built)."""
    if fresh:
        return Path(tempfile.mkdtemp(prefix="semdex-quality-")), True
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "semdex" / "bench-quality"
    path = base / (("quick" if quick else "full") + (f"-{target}" if target else "")
                   + (f"-{Path(model).name}" if model and model != ModelConfig.name else ""))
    path.mkdir(parents=True, exist_ok=True)
    return path, False


def _index(cfg: Config, corpus: Path, work: Path) -> Any:
    from semdexd.app.service import Service

    svc = Service(bench_config(cfg, [corpus], work))
    svc.start()
    until_idle(svc, 7200, 0.1)
    return svc


def gather(svc: Any, items: list[Item], unanswerable: list[str]) -> tuple[list[Asked], float]:
    """Every query's hybrid candidates, and the median time of a whole hybrid search (ms)."""
    from semdexd.search import SearchRequest, request_filter

    asked, times = [], []
    for item, query in [(i, i.query) for i in items] + [(None, q) for q in unanswerable]:
        req = SearchRequest(query=query, mode="hybrid")
        start = time.perf_counter()
        found = svc.searcher.candidates(req, request_filter(req))
        svc.searcher.rank(found, req)
        times.append(time.perf_counter() - start)
        asked.append(Asked(item, query, found))
    return asked, round(1000 * statistics.median(times), 1)


# ---------------------------------------------------------------- ranking offline


def _restrict(found: Candidates, mode: str) -> dict[str, Any]:
    if mode == "hybrid":
        return found.rows
    names = ("semantic",) if mode == "semantic" else ("phrase", "words")
    keep = {cid for n in names for cid in found.lists[n]}
    rows: dict[str, Any] = {cid: r for cid, r in found.rows.items() if cid in keep}
    return rows


def ranked(a: Asked, mode: str, t: scoring.Tuning, legacy: bool = False, limit: int = 10) -> list[tuple[list[Any], float]]:
    """(chunk group, score) in answer order for ``a`` in ``mode``."""
    from semdexd.search import SearchRequest
    from semdexd.search.searcher import ordered_groups

    rows = _restrict(a.found, mode)
    if legacy:
        scores = _legacy_scores(a.found, mode, rows)
        t = replace(t, file_share=0.0)
    else:
        evidence = scoring.query_evidence((a.found.signals[c] for c in rows), t, len(set(tokens(a.query))))
        scores = {c: scoring.score(a.found.signals[c], mode, t, evidence) for c in rows}
    groups = ordered_groups(rows, scores, SearchRequest(query=a.query, limit=limit, mode=mode), t)
    return [(g, max(scores[r.id] for r in g)) for g in groups]


def _legacy_scores(found: Any, mode: str, rows: dict[str, Any]) -> dict[str, float]:
    if mode == "semantic":
        return {c: found.signals[c].cosine or 0.0 for c in rows}
    if mode == "lexical":
        order = list(dict.fromkeys(found.lists["phrase"] + found.lists["words"]))
        return {c: 1.0 / (order.index(c) + 1) if c in order else 0.0 for c in rows}
    sem = sorted((c for c in found.lists["semantic"]), key=lambda c: -(found.signals[c].cosine or 0.0))
    scores = dict.fromkeys(rows, 0.0)
    for name, order in (("semantic", sem), ("phrase", found.lists["phrase"]), ("words", found.lists["words"])):
        for rank, cid in enumerate(order):
            if cid in scores:
                scores[cid] += LEGACY_WEIGHTS[name] / (LEGACY_K + rank + 1)
    return scores


def _relevant(group: list[Any], item: Item, corpus: Path) -> bool:
    path = str(corpus / item.source)
    return bool(group[0].path == path) and min(r.start_line for r in group) <= item.end_line \
        and max(r.end_line for r in group) >= item.start_line


def metrics(asked: Iterable[Asked], mode: str, t: scoring.Tuning, corpus: Path, legacy: bool = False) -> dict[str, float]:
    ranks: list[int | None] = []
    file1 = 0
    for a in asked:
        assert a.item is not None
        got = ranked(a, mode, t, legacy)
        ranks.append(next((n for n, (g, _) in enumerate(got, 1) if _relevant(g, a.item, corpus)), None))
        file1 += bool(got) and got[0][0][0].path == str(corpus / a.item.source)
    n = len(ranks) or 1
    return {"recall@1": round(sum(r == 1 for r in ranks) / n, 3),
            "recall@10": round(sum(r is not None for r in ranks) / n, 3),
            "mrr@10": round(sum(1 / r for r in ranks if r) / n, 3), "file@1": round(file1 / n, 3)}


def calibration(asked: list[Asked], t: scoring.Tuning, cutoff: float, corpus: Path) -> dict[str, Any]:
    """Per mode: share of answerable test queries whose right answer (within the top 10) scores
    at or above ``cutoff`` (of all of them, and of those whose answer is in the top 10), share of unanswerable queries whose best hit scores below it, and
    score medians (right answers, wrong top-1s, unanswerable top-1s)."""
    out: dict[str, Any] = {}
    for mode in MODES:
        right, wrong_top, none_top, above = [], [], [], 0
        answerable = [a for a in asked if a.item is not None]
        for a in answerable:
            got = ranked(a, mode, t)
            assert a.item is not None
            hit = next((s for g, s in got if _relevant(g, a.item, corpus)), None)
            if hit is not None:
                right.append(hit)
                above += hit >= cutoff
            if got and not _relevant(got[0][0], a.item, corpus):
                wrong_top.append(got[0][1])
        for a in asked:
            if a.item is None:
                got = ranked(a, mode, t)
                none_top.append(got[0][1] if got else 0.0)
        out[mode] = {"answer_above_cutoff": round(above / (len(answerable) or 1), 3),
                     "found_answer_above_cutoff": round(above / (len(right) or 1), 3),
                     "unanswerable_below_cutoff": round(sum(s < cutoff for s in none_top) / (len(none_top) or 1), 3),
                     "median_right_answer": _median(right), "median_wrong_top1": _median(wrong_top),
                     "median_unanswerable_top1": _median(none_top),
                     "p90_unanswerable_top1": round(sorted(none_top)[int(0.9 * (len(none_top) - 1))], 3) if none_top else None}
    return out


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


# ---------------------------------------------------------------- tuning


GRID = {"cos_hi": (0.75, 0.9), "lex_power": (0.5, 1.0), "w_lex": (0.2, 0.35, 0.5), "w_lex_short": (0.5, 0.7, 1.0),
        "short_tokens": (3, 5), "phrase_score": (0.5, 0.8), "bm25_mix": (0.6, 1.0), "file_share": (0.0, 0.1)}


def tune(by_set: dict[str, list[Asked]], corpus: Path, base: scoring.Tuning,
         progress: Callable[[str], None]) -> tuple[scoring.Tuning, float]:
    """The grid point maximising, over sets, the mean of hybrid's margin over the best single mode
    (MRR@10 plus recall@1), with the smallest margin counted twice (never worse on any set)."""
    singles = {name: {m: metrics(qs, m, base, corpus) for m in ("semantic", "lexical")} for name, qs in by_set.items()}
    best: tuple[float, scoring.Tuning] | None = None
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        t = replace(base, **dict(zip(keys, values)))  # type: ignore[arg-type]
        margins = []
        for name, qs in by_set.items():
            h = metrics(qs, "hybrid", t, corpus)
            for key in ("mrr@10", "recall@1"):
                margins.append(h[key] - max(singles[name][m][key] for m in ("semantic", "lexical")))
        objective = statistics.mean(margins) + min(margins)
        if best is None or objective > best[0]:
            best = (objective, t)
            progress(f"tune: {objective:.4f} {t}")
    assert best is not None
    return best[1], best[0]


# ---------------------------------------------------------------- run


def run(cfg: Config, quick: bool, fresh: bool, do_tune: bool, progress: Callable[[str], None],
        target: int | None = None) -> dict[str, Any]:
    if target:
        cfg = replace(cfg, chunk=replace(cfg.chunk, target_tokens=target,
                                         overlap_tokens=min(cfg.chunk.overlap_tokens, target // 8)))
    work, temporary = work_dir(fresh, quick, target, cfg.model.name)
    corpus = work / "corpus"
    items, unanswerable = load(quick)
    items = materialise(items, corpus)
    try:
        start = time.perf_counter()
        svc = _index(cfg, corpus, work)
        try:
            index_s = round(time.perf_counter() - start, 1)
            chunks = svc.manifest.counts()["chunks"]
            asked, search_ms = gather(svc, items, unanswerable)
        finally:
            svc.stop()
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    t = scoring.for_model(svc.info.name)
    results: dict[str, Any] = {"target_tokens": cfg.chunk.target_tokens, "chunks": chunks, "search_ms_p50": search_ms, "index_s": index_s, "files": sum(1 for _ in corpus.rglob("*") if _.is_file()) if not temporary else None,
                               "tuning": asdict(t), "cutoff": cfg.search.min_score, "sets": {}}
    split = {s: {h: [a for a in asked if a.item and a.item.set == s and a.item.split == h] for h in ("tune", "test")}
             for s in SETS}
    if do_tune:
        tuned, objective = tune({s: split[s]["tune"] for s in SETS}, corpus, t, progress)
        results["tuned"] = {"tuning": asdict(tuned), "objective": round(objective, 4)}
    for s in SETS:
        test = split[s]["test"]
        results["sets"][s] = {
            "queries": {"tune": len(split[s]["tune"]), "test": len(test)},
            "after": {m: metrics(test, m, t, corpus) for m in MODES},
            "before": {m: metrics(test, m, t, corpus, legacy=True) for m in MODES},
            "file_rank": {str(share): metrics(test, "hybrid", replace(t, file_share=share), corpus)
                          for share in (0.0, 0.1, 0.25)},
        }
    results["multilingual_by_language"] = by_language(split["multilingual"]["test"], t, corpus)
    test_all = [a for a in asked if a.item is None or a.item.split == "test"]
    results["calibration"] = calibration(test_all, t, cfg.search.min_score, corpus)
    results["unanswerable"] = len(unanswerable)
    return results


def by_language(test: list[Asked], t: scoring.Tuning, corpus: Path) -> dict[str, Any]:
    """Metrics of the multilingual test queries per query language, then same vs cross language."""
    groups: dict[str, list[Asked]] = {}
    for a in test:
        assert a.item is not None
        query, doc = languages(a.item)
        groups.setdefault(f"query in {query}", []).append(a)
        groups.setdefault("same language" if query == doc else "cross-language", []).append(a)
    return {name: {"queries": len(qs), **{m: metrics(qs, m, t, corpus) for m in MODES}}
            for name, qs in sorted(groups.items(), key=lambda g: (not g[0].startswith("query"), g[0]))}


def table(r: dict[str, Any]) -> str:
    head = (f"{r['chunks']} chunks of ~{r.get('target_tokens')} tokens; hybrid search p50 {r.get('search_ms_p50')} ms; "
            f"TEST halves; fusion {r['tuning']}")
    lines = [head,
             "| set (test queries) | mode | recall@1 before → after | recall@10 before → after | MRR@10 before → after | file@1 after |",
             "|---|---|---|---|---|---|"]
    for s, d in r["sets"].items():
        for m in MODES:
            b, a = d["before"][m], d["after"][m]
            lines.append(f"| {s} ({d['queries']['test']}) | {m} | {b['recall@1']} → {a['recall@1']} | "
                         f"{b['recall@10']} → {a['recall@10']} | {b['mrr@10']} → {a['mrr@10']} | {a['file@1']} |")
    lines += ["", "file rank, hybrid (share of the next chunks' scores added to the best): file@1 / MRR@10"]
    for s, d in r["sets"].items():
        lines.append(f"  {s}: " + ", ".join(f"{k}: {v['file@1']} / {v['mrr@10']}" for k, v in d["file_rank"].items()))
    if r.get("multilingual_by_language"):
        lines += ["", "multilingual, test half, recall@1 / recall@10 / MRR@10 after: " + " | ".join(MODES)]
        for name, d in r["multilingual_by_language"].items():
            lines.append(f"  {name} ({d['queries']}): " + " | ".join(
                f"{d[m]['recall@1']} / {d[m]['recall@10']} / {d[m]['mrr@10']}" for m in MODES))
    lines += ["", f"score calibration (cutoff {r['cutoff']}, test halves + {r['unanswerable']} unanswerable queries):"]
    for m, c in r["calibration"].items():
        lines.append(f"  {m}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    if "tuned" in r:
        lines += ["", f"tuned on the tune halves: {r['tuned']}"]
    return "\n".join(lines)


def main(argv: list[str], cfg: Config) -> int:
    ap = argparse.ArgumentParser(prog="semdexd bench quality", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 stdlib modules instead of 50 (docs and multilingual sets whole)")
    ap.add_argument("--fresh", action="store_true", help="index in a temp dir (no reuse, nothing kept)")
    ap.add_argument("--tune", action="store_true", help="grid-search the fusion on the tune halves")
    ap.add_argument("--target", type=int, default=None, metavar="TOKENS",
                    help="chunk size to index with (default: the configured one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import sys

    results = run(cfg, args.quick, args.fresh, args.tune, lambda msg: print(msg, file=sys.stderr, flush=True),
                  args.target)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0
