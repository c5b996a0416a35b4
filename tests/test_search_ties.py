"""The same index gives the same answer: equal scores are ordered by a stable key, never by the
order rows were inserted in (row ids)."""

from __future__ import annotations

from pathlib import Path

from semdexd.store.manifest import ChunkRow, FileUpdate, Manifest
from semdexd.search import SearchRequest, scoring
from semdexd.search.searcher import ordered_groups

TEXT = "the same sentence about sourdough bread"


def update(path: str) -> FileUpdate:
    row = ChunkRow(f"{path}#0", path, 0, "h", 1, 1, 0, len(TEXT), TEXT)
    return FileUpdate(path, 1, 1, "h", "indexed", file_type="md", chunks=(row,))


def manifest_with(tmp: Path, order: list[str]) -> Manifest:
    m = Manifest(tmp / "m.sqlite3")
    for path in order:  # one commit each: row ids follow this order
        m.commit_files([update(path)])
    return m


def test_tied_bm25_scores_are_ordered_by_chunk_id_whatever_the_insertion_order(tmp_path):
    paths = ["/r/b.md", "/r/c.md", "/r/a.md", "/r/d.md"]
    first = manifest_with(tmp_path / "one", paths)
    second = manifest_with(tmp_path / "two", list(reversed(paths)))
    one, two = first.lexical.search('"sourdough"', 10), second.lexical.search('"sourdough"', 10)
    assert len({s for _, s in one}) == 1, "the scores are tied"
    assert [c for c, _ in one] == [c for c, _ in two] == sorted(f"{p}#0" for p in paths)
    assert [c for c, _ in first.lexical.search('"sourdough"', 2)] == ["/r/a.md#0", "/r/b.md#0"]


def test_tied_hits_are_ordered_by_path_then_line(tmp_path):
    m = manifest_with(tmp_path, ["/r/z.md", "/r/a.md", "/r/m.md"])
    rows = m.chunks_by_id(["/r/z.md#0", "/r/a.md#0", "/r/m.md#0"])
    for order in (list(rows), list(reversed(rows))):
        scores = dict.fromkeys(order, 0.5)
        groups = ordered_groups({c: rows[c] for c in order}, scores, SearchRequest(query="x"), scoring.DEFAULT)
        assert [g[0].path for g in groups] == ["/r/a.md", "/r/m.md", "/r/z.md"]
