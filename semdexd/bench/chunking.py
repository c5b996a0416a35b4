"""`semdexd bench chunking [--json] [--targets 96,160,224] [--edits N]`: what the chunker does.

On the standard-library modules of the retrieval set (`quality_set.MODULES`) and Markdown built
from their docstrings, per target size: chunk count, chunk size in model tokens (mean, p10,
median, p90, max; overlap and special tokens included), chunking speed, and edit stability: N
one-line inserts, changes and deletes spread over the three largest files, counting the chunks
whose hash is new (what the index would embed again). Needs the tokenizer only, not the encoder.
Retrieval quality per size is `semdexd bench quality`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sysconfig
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from semdexd.config import Config

CountTokens = Callable[[Sequence[str]], list[int]]


def corpus() -> list[tuple[str, str, str]]:
    """(name, file type, text) of the stdlib modules of the quality set, plus one Markdown file
    per module made of its docstrings under headings."""
    import ast

    from semdexd.bench.quality_set import MODULES

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for module in MODULES:
        path = stdlib / module
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        out.append((module, "py", text))
        docs = [(n.name, ast.get_docstring(n)) for n in ast.walk(ast.parse(text))
                if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
        sections = [f"## {name}\n\n{doc}" for name, doc in docs if doc]
        if sections:
            out.append((module + ".md", "md", f"# {module}\n\n" + "\n\n".join(sections)))
    return out


def _percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def sizes(files: list[tuple[str, str, str]], count: CountTokens, target: int, max_tokens: int,
          overlap: int) -> dict[str, Any]:
    """Chunk every file; size distribution and speed."""
    from semdexd.chunk import chunk_text

    all_chunks = []
    start = time.perf_counter()
    for _, kind, text in files:
        all_chunks += chunk_text(text, file_type=kind, count_tokens=count, target_tokens=target,
                                 max_tokens=max_tokens, overlap_tokens=overlap)
    seconds = time.perf_counter() - start
    tokens = count([c.text for c in all_chunks])
    megabytes = sum(len(t.encode()) for _, _, t in files) / 1e6
    return {"chunks": len(all_chunks), "mean": round(statistics.mean(tokens), 1),
            "p10": _percentile(tokens, 0.1), "median": _percentile(tokens, 0.5),
            "p90": _percentile(tokens, 0.9), "max": max(tokens),
            "mb_per_s": round(megabytes / seconds, 2)}


def _edited(lines: list[str], i: int, kind: str) -> list[str]:
    if kind == "insert":
        return lines[:i] + ["        result = helper(value, retries=3)  # new line"] + lines[i:]
    if kind == "change":
        return lines[:i] + [lines[i] + "  # changed"] + lines[i + 1:]
    return lines[:i] + lines[i + 1:]


def edit_stability(files: list[tuple[str, str, str]], count: CountTokens, target: int,
                   max_tokens: int, overlap: int, edits: int) -> dict[str, Any]:
    """Chunks re-embedded per one-line edit over the three largest files."""
    from semdexd.chunk import chunk_text

    def chunk(text: str, kind: str) -> set[str]:
        return {c.hash for c in chunk_text(text, file_type=kind, count_tokens=count, target_tokens=target,
                                           max_tokens=max_tokens, overlap_tokens=overlap)}

    largest = sorted(files, key=lambda f: len(f[2]), reverse=True)[:3]
    changed: Counter[int] = Counter()
    per_file = max(1, edits // (3 * len(largest)))
    for _, kind, text in largest:
        old = chunk(text, kind)
        lines = text.split("\n")
        for step in range(per_file):
            i = 1 + step * (len(lines) - 2) // per_file
            for what in ("insert", "change", "delete"):
                changed[len(chunk("\n".join(_edited(lines, i, what)), kind) - old)] += 1
    total = sum(changed.values())
    return {"edits": total, "mean": round(sum(k * v for k, v in changed.items()) / total, 2),
            "within_2": round(sum(v for k, v in changed.items() if k <= 2) / total, 3),
            "max": max(changed), "histogram": dict(sorted(changed.items()))}


def run(cfg: Config, targets: list[int], edits: int) -> dict[str, Any]:
    from semdexd.embed.model import prepare_model
    from semdexd.embed.tokens import TokenCounter

    info = prepare_model(cfg)
    count = TokenCounter(info).count
    max_tokens = info.max_tokens
    files = corpus()
    report: dict[str, Any] = {"files": len(files), "max_tokens": max_tokens, "settings": {}}
    for target in targets:
        overlap = min(cfg.chunk.overlap_tokens, target // 8)
        report["settings"][str(target)] = {
            "overlap": overlap, **sizes(files, count, target, max_tokens, overlap),
            "edits": edit_stability(files, count, target, max_tokens, overlap, edits)}
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"{report['files']} files, model max {report['max_tokens']} tokens",
             "| target | chunks | mean | p10 | median | p90 | max | MB/s | edits | new chunks per edit: "
             "mean | <= 2 | max |", "|" + "---|" * 12]
    for target, s in report["settings"].items():
        e = s["edits"]
        lines.append(f"| {target} | {s['chunks']} | {s['mean']} | {s['p10']} | {s['median']} | {s['p90']} | "
                     f"{s['max']} | {s['mb_per_s']} | {e['edits']} | {e['mean']} | {e['within_2']:.1%} | {e['max']} |")
    return "\n".join(lines)


def main(argv: list[str], cfg: Config) -> int:
    """Entry point of ``semdexd bench chunking``; prints a table (or JSON); returns 0."""
    parser = argparse.ArgumentParser(prog="semdexd bench chunking", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=str(cfg.chunk.target_tokens),
                        help="comma-separated chunk sizes in tokens (default: the configured one)")
    parser.add_argument("--edits", type=int, default=270, help="one-line edits per target (default 270)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        targets = [int(t) for t in args.targets.split(",") if t.strip()]
    except ValueError:
        parser.error("--targets takes whole numbers, e.g. 96,160,224")
    report = run(cfg, targets, max(3, args.edits))
    print(json.dumps(report, indent=1) if args.json else table(report))
    return 0
