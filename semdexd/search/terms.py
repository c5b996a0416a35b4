"""Query words as the lexical index sees them, the FTS5 queries built from them, and the
lexical evidence of one chunk (IDF-weighted coverage of the query's words, exact phrase).

FTS5's ``unicode61`` tokenizer splits on anything that is not a letter or digit (``_`` too), so
``parse_config`` is the two tokens ``parse config``; `tokens` splits the same way, lower-cased.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

# A word found in more than this share of the chunks ("a", "to", "by", "as") is left out of the
# any-word FTS5 query: its BM25 weight is small (IDF < log 10), but matching and scoring its rows
# is most of that query's cost (95k real chunks, the latency bench's 10 queries: median ~43 ->
# ~12 ms). Coverage still counts it, with its IDF weight. `semdexd bench quality`, test halves,
# hybrid: identifiers unchanged; docstrings R@10 -1 query of 117; docs R@1 -1 and R@10 +1 of 54.
COMMON_SHARE = 0.1

_WORD = re.compile(r"\w+", re.UNICODE)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_IDENTIFIER = re.compile(r"_|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]")


def tokens(text: str) -> list[str]:
    """Lower-case letter/digit runs, as FTS5 ``unicode61`` indexes them."""
    return [t.lower() for t in _TOKEN.findall(text)]


def query_words(query: str) -> list[str]:
    """The distinct ``\\w+`` words of ``query`` (identifiers kept whole), in order."""
    return list(dict.fromkeys(_WORD.findall(query)))


def phrases(query: str) -> list[list[str]]:
    """Token sequences that must occur in a row for an exact match: the quoted parts, else the
    whole query when it has several words or is one identifier-like word; [] otherwise."""
    quoted = [tokens(q) for q in re.findall(r'"([^"]+)"', query)]
    if any(quoted):
        return [q for q in quoted if q]
    words = _WORD.findall(query)
    if len(words) >= 2 or (len(words) == 1 and _IDENTIFIER.search(words[0])):
        return [tokens(query)]
    return []


def phrase_query(query: str) -> str | None:
    """The FTS5 query for an exact match (see `phrases`), or None."""
    parts = phrases(query)
    return " AND ".join('"' + " ".join(p) + '"' for p in parts) if parts else None


def words_query(query: str, common: Collection[str] = ()) -> str | None:
    """The FTS5 query matching any of the query's words (BM25 ranks chunks with more, rarer ones).
    Words in ``common`` (lower-case tokens found in most chunks, see `QueryTerms.common`) are
    left out, unless all of the words are."""
    words = query_words(query)
    words = [w for w in words if w.lower() not in common] or words
    return " OR ".join('"' + w.replace('"', "") + '"' for w in words) if words else None


def fts_queries(query: str) -> list[str]:
    """FTS5 queries for ``query``, most precise first."""
    return [q for q in dict.fromkeys((phrase_query(query), words_query(query))) if q]


@dataclass(frozen=True)
class QueryTerms:
    """The query's distinct tokens with their IDF weights (BM25's IDF over the index's chunks)."""

    weights: Mapping[str, float]
    phrases: tuple[tuple[str, ...], ...]
    common: frozenset[str] = frozenset()   # tokens in more than COMMON_SHARE of the chunks

    @classmethod
    def build(cls, query: str, total: int, doc_freq: Mapping[str, int]) -> QueryTerms:
        weights = {t: idf(total, doc_freq.get(t, 0)) for t in dict.fromkeys(tokens(query))}
        common = frozenset(t for t in weights if doc_freq.get(t, 0) > COMMON_SHARE * total)
        return cls(weights, tuple(tuple(p) for p in phrases(query)), common)

    def coverage(self, chunk_tokens: set[str]) -> float:
        """Share of the query's IDF mass whose words occur in the chunk (0..1)."""
        total = sum(self.weights.values())
        return sum(w for t, w in self.weights.items() if t in chunk_tokens) / total if total else 0.0

    def has_phrase(self, chunk_tokens: list[str]) -> bool:
        """Whether every phrase of the query occurs in the chunk as consecutive tokens."""
        if not self.phrases:
            return False
        text = " " + " ".join(chunk_tokens) + " "
        return all(" " + " ".join(p) + " " in text for p in self.phrases)

    def evidence(self, text: str) -> tuple[float, bool]:
        """``(coverage, has_phrase)`` of a chunk's text: the same as `coverage` of its token set
        and `has_phrase` of its tokens, without tokenizing it. The text is lower-cased once; each
        query token is looked for as a substring and, when there, as a whole letter/digit run (a
        regex led by the token itself, so the search skips ahead to it); a phrase is looked for
        only when all of its tokens are there. 4-9x faster than tokenizing a candidate chunk."""
        low = text.lower()
        found = {t for t in self.weights if t in low and _run((t,)).search(low)}
        phrase = bool(self.phrases) and all(found.issuperset(p) and _run(p).search(low) for p in self.phrases)
        return self.coverage(found), phrase


@functools.lru_cache(maxsize=512)
def _run(seq: tuple[str, ...]) -> re.Pattern[str]:
    """Lower-case tokens ``seq`` in a row in lower-cased text, as `tokens` would split it: each a
    whole letter/digit run, separated by anything else. The pattern starts with the first token
    (its left boundary is a look-behind placed after it) so that `re` scans for that literal."""
    first = re.escape(seq[0])
    rest = "".join(r"[\W_]+" + re.escape(t) for t in seq[1:])
    return re.compile(first + r"(?<![^\W_]" + first + ")" + rest + r"(?![^\W_])")


def idf(total: int, df: int) -> float:
    """BM25's (always positive) inverse document frequency."""
    return math.log(1.0 + (total - df + 0.5) / (df + 0.5))
