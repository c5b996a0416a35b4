"""Text -> units: the non-blank lines, with long lines cut into sentence/word/character pieces.

A unit is the smallest thing a chunk boundary can fall between. Each knows its character span
in the text, its strength as a chunk start (see `structure`), its exact token count (content
tokens, without the model's special tokens or prefix) and a key that orders candidate cuts:
strength first, then shallower indentation, then a hash of the unit's own text (a
content-defined tie-break).
Token counts come from few batched calls: one for all lines, one per refinement level.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

from semdexd.chunk.structure import BLANK, CONTINUATION

CountTokens = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"[.!?;:][\"')\]]*\s+")
_WORD = re.compile(r"\S+")
_PIECE_SLACK = 0.8       # estimated pieces aim this far below the limit
_MAX_INDENT = 255
# A line longer than this many characters is cut into pieces before any token counting, so a
# multi-megabyte single line never reaches the tokenizer (or a regex) whole. Far above any
# real line's share of a chunk, so ordinary text is unaffected.
MAX_LINE_CHARS = 4096


# Tuples, not dataclasses: a tree of 10,000 files makes millions of them (one per line), and a
# frozen dataclass costs ~4x a tuple to build.
class Unit(NamedTuple):
    """A span ``text[start:end]`` that a chunk boundary may fall before."""

    start: int
    end: int
    strength: int
    tokens: int
    key: int


class _Span(NamedTuple):
    start: int
    end: int
    strength: int
    tokens: int = -1     # -1 = not counted yet


def make_units(text: str, line_starts: list[int], strengths: list[int],
               count_tokens: CountTokens, piece_limit: int) -> tuple[list[Unit], int]:
    """The units of ``text`` in order, and the model's per-text overhead in tokens.

    ``line_starts[i]`` is where line ``i`` starts; ``strengths[i]`` is its strength (`BLANK`
    lines give no unit). Units longer than ``piece_limit`` tokens are split into pieces.
    """
    lines: list[tuple[int, int, int]] = []    # (start, end, strength) of each span
    bodies: list[str] = []                      # its text
    last = len(line_starts) - 1
    for index, strength in enumerate(strengths):
        if strength == BLANK:
            continue
        start = line_starts[index]
        end = line_starts[index + 1] - 1 if index < last else len(text)
        if end - start <= MAX_LINE_CHARS:
            body = text[start:end].rstrip()
            lines.append((start, start + len(body), strength))
            bodies.append(body)
            continue
        for piece in _long_line(text, _Span(start, _rstrip_end(text, start, end), strength)):
            lines.append(piece[:3])
            bodies.append(text[piece.start:piece.end])
    counts = count_tokens(bodies + [""])
    overhead = counts.pop()
    spans = [_Span(s, e, strength, max(0, n - overhead)) for (s, e, strength), n in zip(lines, counts)]
    refined = spans
    for splitter in (_sentences, _words, _characters):
        refined = _refine(text, refined, splitter, count_tokens, overhead, piece_limit)
    if refined is not spans:
        spans, bodies = refined, [text[s.start:s.end] for s in refined]
    return [_unit(span, body) for span, body in zip(spans, bodies)], overhead


def _rstrip_end(text: str, start: int, end: int) -> int:
    """``end`` moved back over trailing white space (without copying a long line)."""
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _long_line(text: str, span: _Span) -> list[_Span]:
    """``span`` itself, or for a line above `MAX_LINE_CHARS` pieces of at most that size, each
    ending after the last white space of its window when there is one (a word is not split)."""
    if span.end - span.start <= MAX_LINE_CHARS:
        return [span]
    bounds: list[tuple[int, int]] = []
    start = span.start
    while span.end - start > MAX_LINE_CHARS:
        limit = start + MAX_LINE_CHARS
        space = max(text.rfind(" ", start + MAX_LINE_CHARS // 2, limit),
                    text.rfind("\t", start + MAX_LINE_CHARS // 2, limit))
        cut = space + 1 if space > start else limit
        bounds.append((start, cut))
        start = cut
    bounds.append((start, span.end))
    return _pieces(span, bounds, CONTINUATION)


def _unit(span: _Span, body: str) -> Unit:
    """Key: strength, then shallower indentation, then a hash of ``body``, the span's text
    (content-defined)."""
    shallow = _MAX_INDENT - min(_MAX_INDENT, len(body) - len(body.lstrip()))
    digest = zlib.crc32(body.encode("utf-8", "surrogatepass"))
    return Unit(span.start, span.end, span.strength, span.tokens,
                (span.strength << 40) | (shallow << 32) | digest)


Splitter = Callable[[str, _Span, int], list[_Span]]


def _refine(text: str, spans: list[_Span], splitter: Splitter, count_tokens: CountTokens,
            overhead: int, limit: int) -> list[_Span]:
    """Split every span above ``limit`` tokens with ``splitter``; count the pieces in one call."""
    if all(s.tokens <= limit for s in spans):
        return spans
    out: list[_Span] = []
    fresh: list[int] = []
    for span in spans:
        pieces = splitter(text, span, limit) if span.tokens > limit else [span]
        for piece in pieces:
            if piece.tokens < 0:
                fresh.append(len(out))
            out.append(piece)
    if fresh:
        counts = count_tokens([text[out[i].start:out[i].end] for i in fresh])
        for i, n in zip(fresh, counts):
            piece = out[i]
            out[i] = _Span(piece.start, piece.end, piece.strength, max(0, n - overhead))
    return out


def _pieces(span: _Span, bounds: list[tuple[int, int]], strength: int) -> list[_Span]:
    """Spans for ``bounds``; the first keeps the span's strength, the others get ``strength``."""
    if len(bounds) <= 1:
        return [span]
    return [_Span(s, e, span.strength if i == 0 else strength) for i, (s, e) in enumerate(bounds)]


def _sentences(text: str, span: _Span, limit: int) -> list[_Span]:
    """Cut after sentence punctuation followed by white space."""
    bounds: list[tuple[int, int]] = []
    start = span.start
    for match in _SENTENCE_END.finditer(text, span.start, span.end):
        bounds.append((start, match.start() + len(match.group().rstrip())))
        start = match.end()
    if start < span.end:
        bounds.append((start, span.end))
    return _pieces(span, bounds, 1)


def _words(text: str, span: _Span, limit: int) -> list[_Span]:
    """Greedy runs of whole words, sized by the span's tokens-per-character."""
    per_char = span.tokens / max(1, span.end - span.start)
    budget = max(1.0, limit * _PIECE_SLACK)
    bounds: list[tuple[int, int]] = []
    start = end = -1
    for match in _WORD.finditer(text, span.start, span.end):
        if start >= 0 and (match.end() - start) * per_char > budget:
            bounds.append((start, end))
            start = -1
        if start < 0:
            start = match.start()
        end = match.end()
    if start >= 0:
        bounds.append((start, end))
    return _pieces(span, bounds, CONTINUATION)


def _characters(text: str, span: _Span, limit: int) -> list[_Span]:
    """Equal runs of characters (a long word, base64, minified code), sized by estimate."""
    per_char = span.tokens / max(1, span.end - span.start)
    size = max(1, int(limit * _PIECE_SLACK / max(per_char, 1e-9)))
    bounds = [(s, min(s + size, span.end)) for s in range(span.start, span.end, size)]
    return _pieces(span, bounds, CONTINUATION)
