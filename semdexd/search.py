"""Search: semantic (vectors in the store) and lexical (FTS5 BM25 in the manifest), fused.

Hybrid ranking is reciprocal-rank fusion of the two lists. Exact phrases and identifiers are
looked up as an FTS5 phrase first, so the chunk that contains them leads the lexical list.
Hits are grouped per file (at most ``per_file``), adjacent chunks merged into one hit with the
full line range, and a snippet is taken around the lines that best match the query's words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from semdexd.api.types import SearchRequest
from semdexd.errors import ApiError
from semdexd.manifest import ChunkRow, Filter, Manifest
from semdexd.store import VectorStore

# Fusion, chosen on the labelled set (`semdexd bench quality`): an exact phrase / identifier
# match outranks everything; the bag-of-words BM25 list counts half as much as the vector list.
RRF_K = 10
WEIGHT_SEMANTIC = 1.0
WEIGHT_PHRASE = 2.0
WEIGHT_WORDS = 0.5
CANDIDATES = 100              # results taken from each list before fusion
# A filter is applied to candidate chunk ids from the manifest, never by fetching everything.
# Measured at 100k real chunks, 1%-selective folder filter (`semdexd bench store`): exact dot
# products over the candidates' vectors 28 ms, Chroma `ids=` 63 ms, Chroma `where` 85 ms.
EXACT_MAX = 2000              # up to this many candidates: exact scores over their vectors
PREFILTER_MAX = 20000         # up to this many: Chroma's query restricted to the candidate ids
SNIPPET_LINES = 3
_WORD = re.compile(r"\w+", re.UNICODE)
_IDENTIFIER = re.compile(r"_|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]")


def request_filter(req: SearchRequest) -> Filter:
    """The manifest filter of ``req`` (adapter: one folder and one glob for now; the request's
    paths are already absolute, see semdexd.api.types)."""
    if len(req.paths) > 1 or len(req.globs) > 1 or req.excludes:
        raise ApiError("invalid_params", "search: this build filters on one path and one glob, "
                       "without exclude")
    folder = str(Path(req.paths[0]).resolve()) if req.paths else None
    since = int(req.since * 1e9) if req.since is not None else None
    return Filter(folder=folder, types=tuple(t.lstrip(".") for t in req.types),
                  glob=req.globs[0] if req.globs else None, since_ns=since)


def phrase_query(query: str) -> str | None:
    """The FTS5 query for an exact match, when the query asks for one: quoted phrases, several
    words in a row, or a single identifier-like word (``parse_config``, ``getUser``, ``utf8``)."""
    quoted = [_WORD.findall(q) for q in re.findall(r'"([^"]+)"', query)]
    if any(quoted):
        return " AND ".join('"' + " ".join(p) + '"' for p in quoted if p)
    words = _WORD.findall(query)
    if len(words) >= 2 or (len(words) == 1 and _IDENTIFIER.search(words[0])):
        return '"' + " ".join(words) + '"'
    return None


def words_query(query: str) -> str | None:
    """The FTS5 query matching any of the query's words (BM25 ranks chunks with more, rarer ones)."""
    words = list(dict.fromkeys(_WORD.findall(query)))
    return " OR ".join(f'"{w}"' for w in words) if words else None


def fts_queries(query: str) -> list[str]:
    """FTS5 queries for ``query``, most precise first."""
    return [q for q in dict.fromkeys((phrase_query(query), words_query(query))) if q]


def rrf(lists: Sequence[Sequence[str]], weights: Sequence[float] | None = None, k: int = RRF_K) -> dict[str, float]:
    """Weighted reciprocal-rank fusion: sum over lists of weight / (k + rank)."""
    scores: dict[str, float] = {}
    for ranked, weight in zip(lists, weights or [1.0] * len(lists)):
        for rank, cid in enumerate(ranked):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank + 1)
    return scores


class Searcher:
    def __init__(self, manifest: Manifest, store: VectorStore, embedder: Any) -> None:
        self.manifest = manifest
        self.store = store
        self.embedder = embedder

    def search(self, req: SearchRequest) -> list[dict[str, Any]]:
        where = request_filter(req)
        similarity: dict[str, float] = {}
        if req.mode in ("hybrid", "semantic"):
            neighbours = self._semantic(req.query, where, CANDIDATES)
            similarity = {n.id: n.score for n in neighbours}
        if req.mode in ("hybrid", "lexical"):
            phrase = self._fts(phrase_query(req.query), where, CANDIDATES)
            words = self._fts(words_query(req.query), where, CANDIDATES)
        if req.mode == "hybrid":
            scores = rrf([list(similarity), phrase, words], [WEIGHT_SEMANTIC, WEIGHT_PHRASE, WEIGHT_WORDS])
        elif req.mode == "semantic":
            scores = similarity
        else:
            ranked = list(dict.fromkeys(phrase + words))[:CANDIDATES]
            scores = {cid: 1.0 / (rank + 1) for rank, cid in enumerate(ranked)}
        ranked = sorted(scores, key=lambda c: -scores[c])
        return self._hits(ranked, scores, req, similarity)

    def _semantic(self, query: str, where: Filter, k: int) -> list[Any]:
        result = self.embedder.embed([query], kind="query", priority=True)[0]
        if not isinstance(result, np.ndarray):
            return []
        return self.vector_neighbours(result, where, k)

    def vector_neighbours(self, vector: np.ndarray, where: Filter, k: int) -> list[Any]:
        if where.empty:
            return self.store.query(vector, k)
        ids = self.manifest.chunk_ids_where(where, PREFILTER_MAX)
        if ids is not None and len(ids) <= EXACT_MAX:
            return self.store.exact(vector, ids, k)
        if ids is not None:
            return self.store.query(vector, k, ids=ids)
        chroma_where = _chroma_where(where)
        # Not selective: let the index filter what it can, then keep what passes the rest.
        got = self.store.query(vector, k * 4, where=chroma_where)
        passing = self.manifest.ids_passing([n.id for n in got], where)
        return [n for n in got if n.id in passing][:k]

    def _fts(self, match: str | None, where: Filter, k: int) -> list[str]:
        return [cid for cid, _ in self.manifest.lexical(match, k, where)] if match else []

    def similar(self, path: str, line: int | None, limit: int) -> list[dict[str, Any]]:
        """Chunks of other files nearest to ``path`` (its chunk at ``line``, else the whole file)."""
        own = self.manifest.chunks_of(path)
        rows = [r for r in own if line is not None and r.start_line <= line <= r.end_line] or own
        vecs = self.store.vectors([r.id for r in rows]) if rows else {}
        if not vecs:
            return []
        mean = np.mean(np.stack(list(vecs.values())), axis=0)
        mean /= np.linalg.norm(mean) or 1.0
        own_ids = {r.id for r in own}
        got = [n for n in self.store.query(mean, CANDIDATES) if n.id not in own_ids]
        scores = {n.id: n.score for n in got}
        return self._hits([n.id for n in got], scores, SearchRequest(query="", limit=limit), scores)

    # ------------------------------------------------------------ presentation

    def _hits(self, ranked: list[str], scores: dict[str, float], req: SearchRequest,
              similarity: dict[str, float]) -> list[dict[str, Any]]:
        rows = self.manifest.chunks_by_id(ranked)
        per_file: dict[str, list[ChunkRow]] = {}
        order: list[str] = []
        for cid in ranked:
            row = rows.get(cid)
            if row is None:
                continue
            picked = per_file.setdefault(row.path, [])
            if not picked:
                order.append(row.path)
            if len(picked) < req.per_file:
                picked.append(row)
        words = {w.lower() for w in _WORD.findall(req.query)}
        hits: list[dict[str, Any]] = []
        for path in order:
            for group in _merge_adjacent(per_file[path]):
                best = max(group, key=lambda r: scores.get(r.id, 0.0))
                text, offset = snippet(best, words)
                hit = {"path": path, "start_line": min(r.start_line for r in group),
                       "end_line": max(r.end_line for r in group),
                       "score": round(max(scores.get(r.id, 0.0) for r in group), 6),
                       "snippet": text, "snippet_line": best.start_line + offset}
                if best.id in similarity:
                    hit["similarity"] = round(similarity[best.id], 4)
                hits.append(hit)
        hits.sort(key=lambda h: -h["score"])
        return hits[: req.limit]


def _merge_adjacent(rows: list[ChunkRow]) -> list[list[ChunkRow]]:
    """Group chunks whose line ranges touch or overlap (same file), in line order."""
    groups: list[list[ChunkRow]] = []
    for row in sorted(rows, key=lambda r: r.start_line):
        if groups and row.start_line <= max(r.end_line for r in groups[-1]) + 1:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def snippet(row: ChunkRow, words: set[str]) -> tuple[str, int]:
    """A few lines of ``row`` centred on the line sharing most words with the query, and the
    offset of its first line within the chunk."""
    lines = row.text.split("\n")
    if not words:
        best = next((i for i, l in enumerate(lines) if l.strip()), 0)
    else:
        overlap = [len(words & {w.lower() for w in _WORD.findall(l)}) for l in lines]
        best = max(range(len(lines)), key=lambda i: (overlap[i], -i))
    start = max(0, best - SNIPPET_LINES // 2)
    while start < best and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:start + SNIPPET_LINES]).rstrip(), start


def _chroma_where(where: Filter) -> dict[str, Any] | None:
    conds: list[dict[str, Any]] = []
    if where.folder:
        conds.append({"$or": [{"dirs": {"$contains": where.folder}}, {"path": where.folder}]})
    if where.types:
        conds.append({"type": {"$in": list(where.types)}})
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else {"$and": conds}
