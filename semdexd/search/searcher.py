"""`Searcher`: candidates from the vector store and FTS5, scored on one 0..1 scale, ranked by file.

Candidates: the nearest chunks by vector, the chunks holding the query's phrase/identifier, and
the best BM25 chunks for its words (each up to `pool_size`, filters applied inside each query).
Every candidate gets its signals (`scoring.Signals`) and a score for the mode; files are ranked by
`scoring.file_score`, at most ``per_file`` hits per file, adjacent chunks merged into one hit
pointing at the best chunk's best lines. Equal scores are ordered by path and line, never by
insertion order, so the same index gives the same answer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semdexd.embed.jobs import Embedder
from semdexd.search import scoring
from semdexd.search.request import SearchRequest, request_filter
from semdexd.search.snippets import merge_adjacent, snippet
from semdexd.search.terms import QueryTerms, lexical_queries, tokens
from semdexd.store.filter import Filter
from semdexd.store.manifest import ChunkRow, Manifest
from semdexd.store.vectors import Neighbour, VectorStore, nearest

# Chunks taken from each list: CANDIDATES, or 2 per hit asked for when more hits are asked for
# (the smallest that keeps `semdexd bench quality`'s tune halves: README, "Why these numbers").
CANDIDATES = 50
OWN_ROOM = 200                # `similar` first asks for up to this many more (the file's own chunks are nearest)


def pool_size(limit: int) -> int:
    """How many chunks each candidate list gives for a search of ``limit`` hits."""
    return max(CANDIDATES, 2 * limit)

# A filter is applied to candidate chunk ids from the manifest, never by fetching everything:
# exact scores over few candidates, Chroma restricted to their ids for more, Chroma's `where`
# beyond (fastest first, `semdexd bench store`; README, "Why these numbers").
EXACT_MAX = 2000              # up to this many candidates: exact scores over their vectors
PREFILTER_MAX = 20000         # up to this many: Chroma's query restricted to the candidate ids


@dataclass
class Candidates:
    """A query's candidate chunks: rows, signals, and each list's order (for analysis)."""

    rows: dict[str, ChunkRow] = field(default_factory=dict)
    signals: dict[str, scoring.Signals] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=lambda: {"semantic": [], "phrase": [], "words": []})
    words: set[str] = field(default_factory=set)
    query_tokens: int = 0


class Searcher:
    def __init__(self, manifest: Manifest, store: VectorStore, embedder: Embedder,
                 tuning: scoring.Tuning = scoring.DEFAULT) -> None:
        self.manifest = manifest
        self.store = store
        self.embedder = embedder
        self.tuning = tuning
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="search")  # idle threads end with it

    def search(self, req: SearchRequest, where: Filter | None = None) -> list[dict[str, Any]]:
        """Hits for ``req`` best first (all of them, weak ones included; see `split_weak`)."""
        return self.rank(self.candidates(req, where if where is not None else request_filter(req)), req)

    def candidates(self, req: SearchRequest, where: Filter) -> Candidates:
        """Every chunk any list proposes for ``req``, with its signals.

        The query is embedded on a second thread while this one runs the lexical half (its
        queries, rows and word evidence): the model and SQLite release the GIL, so on two cores
        the two overlap. Chroma's calls hold the GIL; they run here, after."""
        found = Candidates()
        embedding = self._threads.submit(self._query_vector, req.query) if req.mode != "lexical" else None
        terms = self._terms(req.query)
        found.words = set(terms.weights)
        found.query_tokens = terms.words
        if req.mode != "semantic":
            for name, index, match in lexical_queries(req.query, terms.common, terms.absent):
                for cid, bm25 in self.manifest.lexical.search(match, pool_size(req.limit), where, index):
                    if index == "words" or cid not in found.lists[name]:
                        found.lists[name].append(cid)
                    s = found.signals.setdefault(cid, scoring.Signals())
                    s.bm25 = max(bm25, s.bm25) if s.bm25 is not None else bm25
            self._add_rows(found, list(found.signals), terms)
        vector = embedding.result() if embedding is not None else None
        if vector is None:
            return found
        lexical = list(found.rows)
        for n in self.vector_neighbours(vector, where, pool_size(req.limit)):
            found.lists["semantic"].append(n.id)
            found.signals.setdefault(n.id, scoring.Signals()).cosine = n.score
        self._add_rows(found, [cid for cid in found.lists["semantic"] if cid not in found.rows], terms)
        missing = [cid for cid in lexical if found.signals[cid].cosine is None]
        for n in nearest(vector, self.vectors(missing), len(missing)):
            found.signals[n.id].cosine = n.score
        for cid in missing:   # no vector anywhere: its words are in, its meaning is not yet
            found.signals[cid].awaiting = found.signals[cid].cosine is None
        return found

    def _add_rows(self, found: Candidates, ids: list[str], terms: QueryTerms) -> None:
        """Read the rows of ``ids`` into ``found`` with their word evidence."""
        rows = self.manifest.chunks_by_id(ids) if ids else {}
        for cid, row in rows.items():
            s = found.signals[cid]
            s.coverage, s.phrase = terms.evidence(row.text)
        found.rows.update(rows)

    def rank(self, found: Candidates, req: SearchRequest, tuning: scoring.Tuning | None = None) -> list[dict[str, Any]]:
        """The hits of ``found`` for ``req`` under ``tuning`` (default: the searcher's)."""
        t = tuning or self.tuning
        rows = found.rows
        evidence = scoring.query_evidence((found.signals[cid] for cid in rows), t, found.query_tokens)
        scores = {cid: scoring.score(found.signals[cid], req.mode, t, evidence) for cid in rows}
        return self._hits(rows, scores, found.signals, req, found.words, t)

    def _terms(self, query: str) -> QueryTerms:
        total, df = self.manifest.lexical.doc_freqs(list(dict.fromkeys(tokens(query))))
        return QueryTerms.build(query, total, df)

    def _query_vector(self, query: str) -> np.ndarray | None:
        result = self.embedder.embed([query], kind="query", priority=True)[0]
        return result if isinstance(result, np.ndarray) else None

    def vector_neighbours(self, vector: np.ndarray, where: Filter, k: int) -> list[Neighbour]:
        if where.empty:
            return self.store.query(vector, k)
        ids = self.manifest.filtered.chunk_ids(where, PREFILTER_MAX)
        if ids is not None and len(ids) <= EXACT_MAX:
            return nearest(vector, self.vectors(ids), k)
        if ids is not None:
            return self.store.query(vector, k, ids=ids)
        chroma_where = where.chroma_where()
        # Not selective: let the index filter what it can, then keep what passes the rest.
        got = self.store.query(vector, k * 4, where=chroma_where)
        passing = self.manifest.filtered.ids_passing([n.id for n in got], where)
        return [n for n in got if n.id in passing][:k]

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``ids``: the manifest's copies, the store's for chunks written
        before the manifest kept them (chunks awaiting their vector have none)."""
        found = self.manifest.copies.vectors(ids) if ids else {}
        rest = self.manifest.copies.only_in_store([cid for cid in ids if cid not in found])
        found.update(self.store.vectors(rest) if rest else {})
        return found

    def similar(self, path: str, line: int | None, limit: int) -> list[dict[str, Any]]:
        """Chunks of other files nearest to ``path`` (its chunk at ``line``, else the whole file)."""
        own = self.manifest.chunks_of(path)
        rows = [r for r in own if line is not None and r.start_line <= line <= r.end_line] or own
        vecs = self.vectors([r.id for r in rows])
        if not vecs:
            return []
        mean = np.mean(np.stack(list(vecs.values())), axis=0)
        mean /= np.linalg.norm(mean) or 1.0
        own_ids = {r.id for r in own}
        want = pool_size(limit)
        got = [n for n in self.store.query(mean, want + min(len(own_ids), OWN_ROOM)) if n.id not in own_ids]
        if len(got) < want and len(own_ids) > OWN_ROOM:  # a big file's own chunks took the room: room for all
            got = [n for n in self.store.query(mean, want + len(own_ids)) if n.id not in own_ids]
        signals = {n.id: scoring.Signals(cosine=n.score) for n in got}
        scores = {n.id: scoring.semantic_score(n.score, self.tuning) for n in got}
        found = self.manifest.chunks_by_id(list(scores))
        return self._hits(found, scores, signals, SearchRequest(query="", limit=limit, mode="semantic"), set(),
                          self.tuning)

    # ------------------------------------------------------------ presentation

    def _hits(self, rows: dict[str, ChunkRow], scores: dict[str, float], signals: dict[str, scoring.Signals],
              req: SearchRequest, words: set[str], t: scoring.Tuning) -> list[dict[str, Any]]:
        return [self._hit(g[0].path, g, scores, signals, words) for g in ordered_groups(rows, scores, req, t)]

    @staticmethod
    def _hit(path: str, group: list[ChunkRow], scores: dict[str, float], signals: dict[str, scoring.Signals],
             words: set[str]) -> dict[str, Any]:
        best = max(group, key=lambda r: (scores[r.id], -r.start_line))
        text, offset = snippet(best, words)
        s = signals[best.id]
        return {"path": path, "start_line": min(r.start_line for r in group),
                "end_line": max(r.end_line for r in group), "score": round(scores[best.id], 4),
                "snippet": text, "snippet_line": best.start_line + offset,
                "signals": {"cosine": None if s.cosine is None else round(s.cosine, 4),
                            "bm25": None if s.bm25 is None else round(s.bm25, 4),
                            "coverage": round(s.coverage, 4), "phrase": s.phrase}}


def ordered_groups(rows: dict[str, ChunkRow], scores: dict[str, float], req: SearchRequest,
                   t: scoring.Tuning) -> list[list[ChunkRow]]:
    """The hits' chunk groups in answer order: files by `scoring.file_score`, then within a file
    its best ``per_file`` chunks (adjacent ones merged) by score; at most ``req.limit`` groups.
    Ties are ordered by path and line."""
    by_file: dict[str, list[ChunkRow]] = {}
    for cid in sorted(rows, key=lambda c: (-scores[c], rows[c].path, rows[c].start_line, c)):
        by_file.setdefault(rows[cid].path, []).append(rows[cid])
    files = sorted(by_file, key=lambda p: (-scoring.file_score([scores[r.id] for r in by_file[p]], t), p))
    out: list[list[ChunkRow]] = []
    for path in files:
        groups = merge_adjacent(by_file[path][: req.per_file])
        out += sorted(groups, key=lambda g: (-max(scores[r.id] for r in g), g[0].start_line))
        if len(out) >= req.limit:
            break
    return out[: req.limit]


def split_weak(hits: list[dict[str, Any]], min_score: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(hits at or above ``min_score``, the others) keeping the order."""
    return [h for h in hits if h["score"] >= min_score], [h for h in hits if h["score"] < min_score]
