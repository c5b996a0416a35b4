"""One relevance score on a 0..1 scale for every mode, from the raw signals of a chunk.

Signals: ``cosine`` (query vs chunk vector), ``coverage`` (IDF-weighted share of the query's words
found in the chunk, see `QueryTerms.coverage`), ``phrase`` (the query's phrase/identifier occurs
as such) and ``bm25`` (reported, used only to order lexical ties).

* semantic score: the cosine mapped linearly from [COS_LO, COS_HI] onto [0, 1] (clipped); the
  anchors are measured on the dev sets (`semdexd bench quality`) for the bundled model.
* lexical score: coverage ** LEX_POWER, at least PHRASE_SCORE for an exact phrase/identifier.
* hybrid score: a noisy-OR, ``1 - (1 - semantic) * (1 - w * lexical)``: never below the semantic
  score, and the lexical evidence counts by ``w``, which adapts to the query: ``w`` is W_LEX times
  the best coverage any candidate reaches (when no chunk holds the query's rare words, bag-of-words
  matches are filler and count little; when one holds them all, they count fully).

Reading the score (measured on the dev sets, see the README): >= 0.8 clearly about the query;
~0.5 related; below MIN_SCORE (0.35 by default) probably filler.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    """Fusion and calibration parameters (chosen on the dev sets' tuning halves)."""

    cos_lo: float = 0.15
    cos_hi: float = 0.75
    lex_power: float = 1.5
    phrase_score: float = 0.9
    w_lex: float = 0.8
    adaptive: bool = True
    file_share: float = 0.1       # file rank: best chunk + this share of the next ones


DEFAULT = Tuning()


@dataclass
class Signals:
    """Raw evidence for one chunk; ``None`` when that signal was not computed."""

    cosine: float | None = None
    bm25: float | None = None
    coverage: float = 0.0
    phrase: bool = False


def semantic_score(cosine: float | None, t: Tuning) -> float:
    if cosine is None:
        return 0.0
    return min(1.0, max(0.0, (cosine - t.cos_lo) / (t.cos_hi - t.cos_lo)))


def lexical_score(s: Signals, t: Tuning) -> float:
    score = s.coverage ** t.lex_power
    return max(score, t.phrase_score) if s.phrase else score


def lexical_weight(best_coverage: float, t: Tuning) -> float:
    """How much lexical evidence counts in hybrid mode for this query."""
    return t.w_lex * (best_coverage if t.adaptive else 1.0)


def score(s: Signals, mode: str, t: Tuning, w_lex: float) -> float:
    """The 0..1 relevance of a chunk in ``mode`` (hybrid uses the query's lexical weight)."""
    if mode == "semantic":
        return semantic_score(s.cosine, t)
    lex = lexical_score(s, t)
    if mode == "lexical":
        return lex
    return 1.0 - (1.0 - semantic_score(s.cosine, t)) * (1.0 - w_lex * lex)


def file_score(chunk_scores: list[float], t: Tuning) -> float:
    """A file's rank score: its best chunk plus ``file_share`` of its next two best."""
    ordered = sorted(chunk_scores, reverse=True)
    return ordered[0] + t.file_share * sum(ordered[1:3]) if ordered else 0.0
