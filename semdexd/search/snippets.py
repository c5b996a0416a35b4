"""Where a hit points: adjacent chunks of one file merged, and a few real lines of the best chunk
around the line sharing most words with the query (never flattened, never cut)."""

from __future__ import annotations

from semdexd.search.terms import tokens
from semdexd.store.manifest import ChunkRow

SNIPPET_LINES = 3


def merge_adjacent(rows: list[ChunkRow]) -> list[list[ChunkRow]]:
    """Group chunks whose line ranges touch or overlap (same file), in line order."""
    groups: list[list[ChunkRow]] = []
    for row in sorted(rows, key=lambda r: (r.start_line, r.id)):
        if groups and row.start_line <= max(r.end_line for r in groups[-1]) + 1:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def snippet(row: ChunkRow, words: set[str]) -> tuple[str, int]:
    """``SNIPPET_LINES`` lines of ``row`` centred on the line sharing most ``words`` (lower-case
    tokens) with the query, and the offset of the snippet's first line within the chunk."""
    lines = row.text.split("\n")
    if not words:
        best = next((i for i, line in enumerate(lines) if line.strip()), 0)
    else:
        overlap = [len(words & set(tokens(line))) for line in lines]
        best = max(range(len(lines)), key=lambda i: (overlap[i], -i))
    start = max(0, best - SNIPPET_LINES // 2)
    while start < best and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:start + SNIPPET_LINES]).rstrip(), start
