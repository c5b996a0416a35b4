"""Unit ranges -> `Chunk` values: exact text slices, line numbers, UTF-8 byte offsets, overlap,
and a final batched token check that splits anything the model would truncate."""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from semdexd.chunk.units import CountTokens, Unit

_MAX_ROUNDS = 32
_SUFFIX_SHARE = 0.75     # word overlap is estimated from token density: aim below the budget
_SURE = 0.9              # a span estimated at or below this share of the model's limit is not counted again


@dataclass(frozen=True)
class Chunk:
    """A piece of a file's extracted text, embedded on its own.

    ``text`` is exactly the extracted text between ``start_byte`` and ``end_byte`` (UTF-8 offsets),
    which lie on lines ``start_line`` .. ``end_line`` (1-based, inclusive). ``hash`` is the hex
    sha256 of ``text``: equal text, equal hash, so unchanged chunks are not embedded again.
    """

    text: str
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    hash: str


@dataclass(frozen=True)
class Span:
    """``text[start:end]``; ``core`` is where its own (non-overlap) text begins."""

    start: int
    end: int
    core: int


class TextIndex:
    """Maps character offsets of one text to 1-based line numbers and UTF-8 byte offsets."""

    def __init__(self, text: str, line_starts: list[int]) -> None:
        self.text = text
        self.line_starts = line_starts
        self._ascii = text.isascii()
        self._line_bytes: list[int] = []
        if not self._ascii:
            total = 0
            for index, start in enumerate(line_starts):
                self._line_bytes.append(total)
                end = line_starts[index + 1] if index + 1 < len(line_starts) else len(text)
                total += len(text[start:end].encode("utf-8", "surrogatepass"))

    def line(self, offset: int) -> int:
        return bisect_right(self.line_starts, offset)

    def byte(self, offset: int) -> int:
        if self._ascii:
            return offset
        index = bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[index]
        return self._line_bytes[index] + len(self.text[start:offset].encode("utf-8", "surrogatepass"))

    def chunk(self, span: Span) -> Chunk:
        text = self.text[span.start:span.end]
        return Chunk(text, self.line(span.start), self.line(span.end - 1), self.byte(span.start),
                     self.byte(span.end), hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())


def spans(text: str, units: Sequence[Unit], ranges: Sequence[tuple[int, int]], *,
          overlap_tokens: int, clean_break: int, words: bool) -> list[Span]:
    """One span per unit range; a range that starts at a weak cut (below ``clean_break``) also
    takes up to ``overlap_tokens`` tokens of whole units before it, or with ``words`` (prose)
    the last words of a unit too long to take whole."""
    out: list[Span] = []
    for a, b in ranges:
        start = units[a].start
        if out and overlap_tokens > 0 and units[a].strength < clean_break:
            start = _overlap_start(text, units, a, out[-1].core, overlap_tokens, words, clean_break)
        out.append(Span(start, units[b - 1].end, units[a].start))
    return out


def _overlap_start(text: str, units: Sequence[Unit], a: int, floor: int, budget: int,
                   words: bool, clean_break: int) -> int:
    """Where the overlap before unit ``a`` begins: never before ``floor`` (the previous core)
    nor across the start of the block that unit ``a`` is in."""
    start = units[a].start
    i = a - 1
    while i >= 0 and units[i].start >= floor and units[i].tokens <= budget:
        budget -= units[i].tokens
        start = units[i].start
        if units[i].strength >= clean_break:
            return start
        i -= 1
    if words and i >= 0 and units[i].start >= floor and budget > 0 and start == units[a].start:
        start = _word_suffix(text, units[i], budget, start)
    return start


def _word_suffix(text: str, unit: Unit, budget: int, default: int) -> int:
    """Start of the last words of ``unit`` worth about ``budget`` tokens (by its token density),
    or ``default`` when the unit has no word boundary there."""
    per_char = unit.tokens / max(1, unit.end - unit.start)
    want = int(_SUFFIX_SHARE * budget / max(per_char, 1e-9))
    space = text.find(" ", max(unit.start, unit.end - want), unit.end)
    return space + 1 if 0 <= space < unit.end - 1 else default


def estimates(items: list[Span], units: list[Unit], overhead: int) -> list[int]:
    """Each span's tokens as the sum of the units it touches (whole) plus ``overhead``: an upper
    bound wherever counts add up over lines, as WordPiece's do (words never cross a line)."""
    starts = [u.start for u in units]
    ends = [u.end for u in units]
    total = [0]
    for u in units:
        total.append(total[-1] + u.tokens)
    return [overhead + total[bisect_left(starts, s.end)] - total[bisect_right(ends, s.start)] for s in items]


def verify(index: TextIndex, items: list[Span], unit_starts: list[int],
           count_tokens: CountTokens, max_tokens: int, estimated: Sequence[int] = ()) -> list[Span]:
    """Count the spans in one call (not those ``estimated`` well below ``max_tokens``: counting
    is most of chunking's cost); drop the overlap of, then halve, any above ``max_tokens``."""
    sure = int(max_tokens * _SURE)
    for round_ in range(_MAX_ROUNDS):
        if round_ == 0 and estimated:
            unsure = [i for i, n in enumerate(estimated) if n > sure]
            counted = dict(zip(unsure, count_tokens([index.text[items[i].start:items[i].end] for i in unsure])))
            counts = [counted.get(i, 0) for i in range(len(items))]
        else:
            counts = count_tokens([index.text[s.start:s.end] for s in items])
        if all(n <= max_tokens for n in counts):
            return items
        fixed: list[Span] = []
        for span, n in zip(items, counts):
            fixed.extend(_shrink(index.text, span, unit_starts) if n > max_tokens else [span])
        items = fixed
    return items


def _shrink(text: str, span: Span, unit_starts: list[int]) -> list[Span]:
    if span.start < span.core:
        return [Span(span.core, span.end, span.core)]
    middle = _split_point(text, span, unit_starts)
    left_end = span.start + len(text[span.start:middle].rstrip())
    right_start = middle + (len(text[middle:span.end]) - len(text[middle:span.end].lstrip()))
    if left_end <= span.start or right_start >= span.end:
        return [span]
    return [Span(span.start, left_end, span.start), Span(right_start, span.end, right_start)]


def _split_point(text: str, span: Span, unit_starts: list[int]) -> int:
    """A unit start nearest the middle of ``span``, else white space nearest it, else the middle."""
    middle = (span.start + span.end) // 2
    lo, hi = bisect_right(unit_starts, span.start), bisect_left(unit_starts, span.end)
    if lo < hi:
        return min(unit_starts[lo:hi], key=lambda s: abs(s - middle))
    space = text.rfind(" ", span.start + 1, middle + 1)
    if space <= span.start:
        space = text.find(" ", middle, span.end - 1)
    return space if space > span.start else middle
