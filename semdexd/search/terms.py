"""Query words as the lexical index sees them, the FTS5 queries built from them, and the
lexical evidence of one chunk (IDF-weighted coverage of the query's words, exact phrase).

FTS5's ``unicode61`` tokenizer splits on anything that is not a letter or digit (``_`` too), so
``parse_config`` is the two tokens ``parse config``; `tokens` splits the same way, lower-cased and
with Latin diacritics folded (``remove_diacritics 2``: ``Käse`` is ``kase``).

Chinese and Japanese (`semdexd.store.cjk`): a CJK run is split off any Latin letters it is glued
to, and its units are its overlapping character bigrams (one character: itself); they are
searched in the manifest's ``chunks_cjk`` table (`cjk_phrase_query`, `cjk_words_query`), the
rest in ``chunks_fts`` as before. A CJK run of n characters counts as ceil(n / 2) words for the
short/long query weight (Chinese words are mostly 2 characters), and one of 3+ characters is
looked for as an exact phrase, as several Latin words are. Text without CJK is handled exactly as
before.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from semdexd.store import cjk

# A word found in more than this share of the chunks ("a", "to", "by", "as") is left out of the
# any-word FTS5 query: its BM25 weight is small (IDF < log 10), but matching and scoring its rows
# is most of that query's cost. Coverage still counts it, with its IDF weight.
COMMON_SHARE = 0.1

_WORD = re.compile(r"\w+", re.UNICODE)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_IDENTIFIER = re.compile(r"_|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]")


def tokens(text: str) -> list[str]:
    """Lower-case letter/digit runs, diacritics folded, as FTS5 ``unicode61`` indexes them; a
    run holding CJK is split at script changes and its CJK parts become bigrams (`cjk.units`)."""
    return cjk.units(text)


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
    if len(words) >= 2 or (len(words) == 1 and (_IDENTIFIER.search(words[0]) or len(tokens(words[0])) >= 2
                                                 and cjk.has_cjk(words[0]))):
        return [tokens(query)]
    return []


def word_count(query: str) -> int:
    """How many words ``query`` says, for the short/long weight: its distinct tokens, a CJK run
    of n characters counting ceil(n / 2) instead of its n - 1 bigrams."""
    count, seen = 0, set()
    for token in _TOKEN.findall(cjk.fold(query)):
        for piece in cjk.pieces(token):
            if piece not in seen:
                seen.add(piece)
                count += (len(piece) + 1) // 2 if cjk.is_cjk_unit(piece) else 1
    return count


def phrase_query(query: str) -> str | None:
    """The ``chunks_fts`` query for an exact match (see `phrases`), or None (also when a phrase
    holds CJK: `cjk_phrase_query` asks for it)."""
    parts = phrases(query)
    if not parts or any(cjk.is_cjk_unit(t) for p in parts for t in p):
        return None
    return " AND ".join('"' + " ".join(p) + '"' for p in parts)


def words_query(query: str, common: Collection[str] = ()) -> str | None:
    """The ``chunks_fts`` query matching any of the query's words (BM25 ranks chunks with more,
    rarer ones). Words in ``common`` (lower-case tokens found in most chunks, see
    `QueryTerms.common`) are left out, unless all of the words are. Of a word holding CJK only
    its other letters are kept (its CJK part is `cjk_words_query`'s)."""
    words = [p for w in query_words(query) for p in (cjk.pieces(w) if cjk.has_cjk(w) else [w])
             if not cjk.is_cjk_unit(p)]
    words = [w for w in words if w.lower() not in common] or words
    return " OR ".join('"' + w.replace('"', "") + '"' for w in words) if words else None


def cjk_phrase_query(query: str) -> str | None:
    """The ``chunks_cjk`` query for an exact match when a phrase holds CJK (see `phrases`;
    `cjk.fts_phrase` of each, Latin ones too: that table holds the Latin words of its chunks, and
    a chunk holding them all holds CJK), or None."""
    parts = phrases(query) if cjk.has_cjk(query) else []
    if not any(cjk.is_cjk_unit(t) for p in parts for t in p):
        return None
    return " AND ".join(cjk.fts_phrase(p) for p in parts)


def cjk_words_query(query: str, common: Collection[str] = (), absent: Collection[str] = ()) -> str | None:
    """The ``chunks_cjk`` query matching any of the query's units (Latin words too: there they
    are found also where glued to CJK), those in ``common`` left out unless no other unit is
    found at all (``absent``: in no chunk). Bigrams spanning two words (``加专`` of ``附加专项``)
    are often absent; a small index makes every present unit "common"."""
    units = list(dict.fromkeys(tokens(query)))
    kept = [u for u in units if u not in common]
    if all(u in absent for u in kept):
        kept = units
    return " OR ".join(cjk.fts_term(u) for u in kept) if kept else None


def lexical_queries(query: str, common: Collection[str] = (), absent: Collection[str] = ()) -> list[tuple[str, str, str]]:
    """Every FTS5 query of a search as (list name, index, match): the phrase and any-word
    queries on ``"words"`` (``chunks_fts``), then on ``"cjk"`` (``chunks_cjk``). ``common`` and
    ``absent`` are `QueryTerms.common` and `QueryTerms.absent`."""
    out = [("phrase", "words", phrase_query(query)), ("words", "words", words_query(query, common)),
           ("phrase", "cjk", cjk_phrase_query(query)), ("words", "cjk", cjk_words_query(query, common, absent))]
    return [(name, index, match) for name, index, match in out if match]


def fts_queries(query: str) -> list[str]:
    """``chunks_fts`` queries for ``query``, most precise first."""
    return [q for q in dict.fromkeys((phrase_query(query), words_query(query))) if q]


@dataclass(frozen=True)
class QueryTerms:
    """The query's distinct tokens with their IDF weights (BM25's IDF over the index's chunks)."""

    weights: Mapping[str, float]
    phrases: tuple[tuple[str, ...], ...]
    common: frozenset[str] = frozenset()   # tokens in more than COMMON_SHARE of the chunks
    words: int = 0                         # `word_count` of the query
    absent: frozenset[str] = frozenset()   # tokens in no chunk

    @classmethod
    def build(cls, query: str, total: int, doc_freq: Mapping[str, int]) -> QueryTerms:
        weights = {t: idf(total, doc_freq.get(t, 0)) for t in dict.fromkeys(tokens(query))}
        common = frozenset(t for t in weights if doc_freq.get(t, 0) > COMMON_SHARE * total)
        absent = frozenset(t for t in weights if not doc_freq.get(t, 0))
        return cls(weights, tuple(tuple(p) for p in phrases(query)), common, word_count(query), absent)

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
        only when all of its tokens are there. 4-9x faster than tokenizing a candidate chunk.
        A CJK unit is found anywhere; a Latin token may border CJK (``pythonで``): Latin-only
        tokens and phrases are looked for in the text with its CJK blanked out."""
        low, latin = cjk.folded_and_latin(text)
        units = self._cjk_units
        found = {t for t in self.weights if t in low and (t in units or _run((t,)).search(latin))}
        phrase = bool(self.phrases) and all(found.issuperset(p) and _has_run(p, low, latin) for p in self.phrases)
        return self.coverage(found), phrase

    @functools.cached_property
    def _cjk_units(self) -> frozenset[str]:
        """The query's CJK units (found anywhere: no borders)."""
        return frozenset(t for t in self.weights if cjk.is_cjk_unit(t))


def _has_run(seq: tuple[str, ...], low: str, latin: str) -> bool:
    """Whether folded text ``low`` (``latin``: the same with CJK blanked) holds the tokens ``seq``
    in a row (see `_run`, `_mixed_run`)."""
    if _latin_only(seq):
        return _run(seq).search(latin) is not None
    pattern, left, right = _mixed_run(seq)
    for m in pattern.finditer(low):
        if (not left or m.start() == 0 or not _is_latin_letter(low[m.start() - 1])) and \
                (not right or m.end() == len(low) or not _is_latin_letter(low[m.end()])):
            return True
    return False


@functools.lru_cache(maxsize=512)
def _latin_only(seq: tuple[str, ...]) -> bool:
    return not any(cjk.is_cjk_unit(t) for t in seq)


def _is_latin_letter(ch: str) -> bool:
    """A letter or digit that is not CJK (what may not border a Latin token)."""
    return ch.isalnum() and not cjk.has_cjk(ch)


@functools.lru_cache(maxsize=512)
def _run(seq: tuple[str, ...]) -> re.Pattern[str]:
    """Lower-case tokens ``seq`` (no CJK) in a row in lower-cased text, as `tokens` would split it:
    each a whole letter/digit run, separated by anything else. The pattern starts with the first
    token (its left boundary is a look-behind placed after it) so that `re` scans for that
    literal. (A character class naming the CJK ranges would make each compile take ~3 ms: CJK
    borders are handled by blanking CJK in the text instead, or by `_mixed_run`.)"""
    first = re.escape(seq[0])
    rest = "".join(r"[\W_]+" + re.escape(t) for t in seq[1:])
    return re.compile(first + r"(?<![^\W_]" + first + ")" + rest + r"(?![^\W_])")


@functools.lru_cache(maxsize=512)
def _mixed_run(seq: tuple[str, ...]) -> tuple[re.Pattern[str], bool, bool]:
    """Tokens ``seq`` holding CJK units in a row: (pattern, whether its first and its last piece
    are Latin, whose outer borders the caller checks). CJK units are merged back into their runs
    (overlapping bigrams ``保存 存方 方法`` -> ``保存方法``); a CJK run may touch its neighbours."""
    segments: list[str] = []
    for t in seq:
        if segments and cjk.is_cjk_unit(t) and cjk.is_cjk_unit(segments[-1]) and len(t) == 2 \
                and segments[-1][-1] == t[0]:
            segments[-1] += t[1]
        else:
            segments.append(t)
    pattern = ""
    for i, seg in enumerate(segments):
        if i:
            pattern += r"[\W_]*" if cjk.is_cjk_unit(seg) or cjk.is_cjk_unit(segments[i - 1]) else r"[\W_]+"
        pattern += re.escape(seg)
    return re.compile(pattern), not cjk.is_cjk_unit(segments[0]), not cjk.is_cjk_unit(segments[-1])


def idf(total: int, df: int) -> float:
    """BM25's (always positive) inverse document frequency."""
    return math.log(1.0 + (total - df + 0.5) / (df + 0.5))
