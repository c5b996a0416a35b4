"""One relevance score on a 0..1 scale for every mode, from the raw signals of a chunk.

Signals: ``cosine`` (query vs chunk vector), ``coverage`` (IDF-weighted share of the query's words
found in the chunk, see `QueryTerms.coverage`), ``phrase`` (the query's phrase/identifier occurs
as such) and ``bm25`` (FTS5's, relative to the query's best candidate).

* semantic score: the cosine mapped linearly from [cos_lo, cos_hi] onto [0, 1] (clipped); the
  anchors are the model's (`for_model`): each model spreads its cosines differently
  (all-MiniLM-L6-v2's answers lie around 0.2-0.7, multilingual-e5-small's within 0.8-0.95).
* lexical score: coverage ** lex_power, times (1 - bm25_mix + bm25_mix * bm25 / the query's best
  bm25) so that term frequency and length count too; for an exact phrase/identifier,
  phrase_score + (1 - phrase_score) * that.
* hybrid score (a chunk whose vector is not computed yet: its lexical score): a noisy-OR, ``1 - (1 - semantic) * (1 - w * lexical)``: never below the
  semantic score; lexical evidence adds in proportion to its strength for this query (the share of
  the query's rare words the chunk holds, its BM25 against the query's best, an exact phrase), so a
  query whose words the answer does not share falls back on meaning, and an identifier or phrase
  found verbatim leads. ``w`` adapts to the query: ``w_lex_short`` for a short query (a name, a
  few keywords: its words are the evidence), ``w_lex`` for a longer description. (Scaling ``w``
  by the best coverage any chunk reaches was tried and lost on the tune halves.) Parameters chosen
  on the dev sets' tune halves (`semdexd bench quality --tune`).

Reading the score (hybrid, measured on the dev sets' test halves, `semdexd bench quality`):
>= 0.8 clearly about the query (59% of the right answers found in the top 3 score there);
0.5-0.8 related (89% of right answers score >= 0.5); 0.35-0.5 loosely related; below 0.35
(the default cutoff, ``[search] min_score``) probably filler: every top-3 hit of the 34
unanswerable queries, and 1 right answer in 176.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Tuning:
    """Fusion and calibration parameters (chosen on the dev sets' tuning halves)."""

    cos_lo: float = 0.15
    cos_hi: float = 0.75
    lex_power: float = 1.0
    phrase_score: float = 0.8
    bm25_mix: float = 1.0         # share of the lexical score given by BM25 relative to the query's best
    w_lex: float = 0.35           # lexical weight for descriptive queries (more than short_tokens words)
    w_lex_short: float = 0.7      # lexical weight for short queries (names, keywords)
    short_tokens: int = 5
    file_share: float = 0.1       # file rank: best chunk + this share of the next two


DEFAULT = Tuning()

# Semantic anchors other than all-MiniLM-L6-v2's, matched to its own on the dev sets' tune halves
# (the medians of a query's cosine to its answer and to other passages map to MiniLM's).
COSINE_RANGES: dict[str, tuple[float, float]] = {"multilingual-e5-small": (0.83, 0.93)}


def for_model(name: str, base: Tuning = DEFAULT) -> Tuning:
    """``base`` with the semantic anchors of the model called ``name`` (a local model: MiniLM's)."""
    if name not in COSINE_RANGES:
        return base
    lo, hi = COSINE_RANGES[name]
    return replace(base, cos_lo=lo, cos_hi=hi)


@dataclass
class Signals:
    """Raw evidence for one chunk; ``None`` when that signal was not computed."""

    cosine: float | None = None
    bm25: float | None = None
    coverage: float = 0.0
    phrase: bool = False
    awaiting: bool = False      # the chunk has no vector yet: hybrid scores its words alone


def semantic_score(cosine: float | None, t: Tuning) -> float:
    if cosine is None:
        return 0.0
    return min(1.0, max(0.0, (cosine - t.cos_lo) / (t.cos_hi - t.cos_lo)))


def lexical_score(s: Signals, t: Tuning, best_bm25: float = 0.0) -> float:
    """Coverage-based, scaled down by ``bm25_mix`` for chunks whose BM25 (term frequency, length)
    is below the query's best; with the exact phrase, ``phrase_score`` plus the rest of the way
    in proportion (so phrase matches keep their order among themselves)."""
    relative = (s.bm25 or 0.0) / best_bm25 if best_bm25 > 0 else 1.0
    score = float(s.coverage ** t.lex_power) * (1.0 - t.bm25_mix + t.bm25_mix * relative)
    return t.phrase_score + (1.0 - t.phrase_score) * score if s.phrase else score


@dataclass(frozen=True)
class QueryEvidence:
    """What the scores of one query's chunks depend on beyond their own signals."""

    w_lex: float            # weight of lexical evidence in hybrid mode
    best_bm25: float        # best BM25 among the candidates


def query_evidence(signals: Iterable[Signals], t: Tuning, query_tokens: int) -> QueryEvidence:
    """The lexical weight by query length (a short query names something: its words are the
    evidence; a long one describes: meaning counts more), and the candidates' best BM25."""
    best_bm25 = max((s.bm25 or 0.0 for s in signals), default=0.0)
    return QueryEvidence(t.w_lex_short if query_tokens <= t.short_tokens else t.w_lex, best_bm25)


def score(s: Signals, mode: str, t: Tuning, q: QueryEvidence) -> float:
    """The 0..1 relevance of a chunk in ``mode``."""
    if mode == "semantic":
        return semantic_score(s.cosine, t)
    lex = lexical_score(s, t, q.best_bm25)
    if mode == "lexical" or s.awaiting:
        return lex
    return 1.0 - (1.0 - semantic_score(s.cosine, t)) * (1.0 - q.w_lex * lex)


def file_score(chunk_scores: list[float], t: Tuning) -> float:
    """A file's rank score: its best chunk plus ``file_share`` of its next two best."""
    ordered = sorted(chunk_scores, reverse=True)
    return ordered[0] + t.file_share * sum(ordered[1:3]) if ordered else 0.0
