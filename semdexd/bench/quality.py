"""`semdexd bench quality [--json] [--quick] [--targets 96,160,224]`: retrieval quality figures.

For each chunk-size setting, the labelled stdlib set (see `quality_set`) is indexed by the real
Service into a temp data dir and every query is asked in semantic, lexical and hybrid mode. A hit
is relevant when it is in the function's file and its line range overlaps the function's lines.
Printed per setting and mode: recall@1, recall@10 and MRR (@10).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from semdexd.bench.quality_set import Labelled, load_set, materialise
from semdexd.config import Config

MODES = ("semantic", "lexical", "hybrid")


def rank_of(hits: list[dict[str, Any]], item: Labelled) -> int | None:
    """1-based rank of the first relevant hit, or None."""
    for rank, h in enumerate(hits, 1):
        if h["path"] == str(item.path) and h["start_line"] <= item.end_line and h["end_line"] >= item.start_line:
            return rank
    return None


def score(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {"recall@1": round(sum(1 for r in ranks if r == 1) / n, 3),
            "recall@10": round(sum(1 for r in ranks if r is not None and r <= 10) / n, 3),
            "mrr@10": round(sum(1 / r for r in ranks if r is not None and r <= 10) / n, 3)}


def _index(cfg: Config, corpus: Path, work: Path, target: int) -> Any:
    from semdexd.service import Service

    overlap = min(cfg.chunk.overlap_tokens, target // 8)
    bcfg = replace(cfg,
                   paths=replace(cfg.paths, data_dir=work / f"data-{target}", state_dir=work / "state",
                                 runtime_dir=Path(tempfile.mkdtemp(prefix="sxq", dir="/tmp"))),
                   index=replace(cfg.index, folders=(corpus,), reconcile_interval_s=0),
                   chunk=replace(cfg.chunk, target_tokens=target, overlap_tokens=overlap))
    svc = Service(bcfg)
    svc.start()
    deadline = time.monotonic() + 7200
    while not (svc.error or svc.state() == "idle"):
        if time.monotonic() > deadline:
            raise RuntimeError("indexing the quality corpus took over 2 hours")
        time.sleep(0.1)
    if svc.error:
        raise RuntimeError(svc.error)
    return svc


def evaluate(svc: Any, labelled: list[Labelled], per_file: int = 3) -> dict[str, dict[str, float]]:
    from semdexd.search import SearchRequest

    out = {}
    for mode in MODES:
        ranks = [rank_of(svc.searcher.search(SearchRequest(query=item.query.text, limit=10, mode=mode,
                                                           per_file=per_file)), item)
                 for item in labelled]
        out[mode] = score(ranks)
    return out


def run(cfg: Config, targets: list[int], quick: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="semdex-quality-"))
    corpus = work / "corpus"
    corpus.mkdir()
    labelled = materialise(load_set(quick), corpus)
    results: dict[str, Any] = {"queries": len(labelled), "files": len(list(corpus.iterdir())), "settings": {}}
    try:
        for target in targets:
            start = time.perf_counter()
            svc = _index(cfg, corpus, work, target)
            try:
                chunks = svc.manifest.counts()["chunks"]
                metrics = evaluate(svc, labelled)
            finally:
                svc.stop()
            results["settings"][str(target)] = {"chunks": chunks, "index_s": round(time.perf_counter() - start, 1),
                                                **metrics}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{results['queries']} queries over {results['files']} files",
             "| target tokens | chunks | mode | recall@1 | recall@10 | MRR@10 |", "|---|---|---|---|---|---|"]
    for target, r in results["settings"].items():
        for mode in MODES:
            m = r[mode]
            lines.append(f"| {target} | {r['chunks']} | {mode} | {m['recall@1']} | {m['recall@10']} | {m['mrr@10']} |")
    return "\n".join(lines)


def main(argv: list[str], cfg: Config) -> int:
    ap = argparse.ArgumentParser(prog="semdexd bench quality", description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=str(cfg.chunk.target_tokens),
                    help="comma-separated chunk sizes in tokens (default: the configured one)")
    ap.add_argument("--quick", action="store_true", help="12 modules instead of 50")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        targets = [int(t) for t in args.targets.split(",") if t.strip()]
    except ValueError:
        ap.error("--targets takes whole numbers, e.g. 96,160,224")
    results = run(cfg, targets, args.quick)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0
