"""`chunk_text`: extracted text -> chunks sized in model tokens, cut where the structure is.

Pipeline: lines -> strengths (`structure`) -> units with exact token counts (`units`) ->
content-defined cuts (`cuts`) -> spans with overlap, checked against the model limit in one
batched call (`assemble`). See `cuts` for why an edit only changes the chunks around it.
"""

from __future__ import annotations

from collections.abc import Sequence

from semdexd.chunk.assemble import Chunk, TextIndex, estimates, spans, verify
from semdexd.chunk.cuts import segments
from semdexd.chunk.structure import layout
from semdexd.chunk.units import CountTokens, make_units
from semdexd.extract.filetypes import PROSE_TYPES

# Bump when the same text may be cut differently: the index re-embeds everything on a change.
CHUNKER_VERSION = "1"

# Cuts are at least WINDOW * target tokens apart (local maxima over that window), which makes
# the mean chunk close to the target; a range above LIMIT * target is cut again.
WINDOW = 0.5
LIMIT = 1.5
_PIECE = 0.5            # lines above this * target are cut into sentences/words
_MARGIN = 0.02          # slack for tokenizers whose counts are not exactly additive over lines


def chunk_text(text: str, *, file_type: str, count_tokens: CountTokens, target_tokens: int,
               max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Cut ``text`` into chunks of about ``target_tokens`` model tokens, none above ``max_tokens``.

    ``count_tokens(texts)`` gives the number of tokens the model sees for each text (special
    tokens and prefix included); it is called a few times per text, in batches. Chunks cover all
    non-blank text in order; a chunk that starts mid-structure repeats up to ``overlap_tokens``
    of what precedes it. Boundaries depend on local content only, so editing one line changes
    only the chunk(s) around it. Blank text gives ``[]``.
    """
    if not text.strip():
        return []
    count_tokens = batched(count_tokens)
    target = max(1, min(target_tokens, max_tokens))
    lines = text.split("\n")
    line_starts = _line_starts(lines)
    prose = file_type in PROSE_TYPES
    shape = layout(lines, prose=prose)
    units, overhead = make_units(text, line_starts, shape.strengths, count_tokens,
                                 piece_limit=max(4, int(target * _PIECE)))
    budget = max(1, max_tokens - overhead)
    overlap = max(0, min(overlap_tokens, budget // 4))
    limit = max(1, min(int(target * LIMIT), int(budget * (1 - _MARGIN)) - overlap))
    ranges = segments(units, window=max(1, int(target * WINDOW)), limit=limit)
    index = TextIndex(text, line_starts)
    items = spans(text, units, ranges, overlap_tokens=overlap, clean_break=shape.clean_break,
                  words=prose)
    items = verify(index, items, [u.start for u in units], count_tokens, max_tokens,
                   estimates(items, units, overhead))
    return [index.chunk(span) for span in items]


# Characters of text per chunk of the cap worth chunking at most: generous (prose is ~4-5
# characters per token, code ~3), so the text cut before chunking still fills the chunk cap.
_CHARS_PER_CAPPED_TOKEN = 8


def chunk_budget_chars(cap: int, target_tokens: int) -> int:
    """Characters of text enough to fill ``cap`` chunks of ``target_tokens``: text beyond this is
    cut before chunking (chunking 8 MB to keep the first 5000 chunks wastes minutes of CPU)."""
    return max(1, cap * target_tokens * _CHARS_PER_CAPPED_TOKEN)


def cap_chunks(chunks: list[Chunk], cap: int, reason: str = "", cut: bool = False) -> tuple[list[Chunk], str]:
    """The first ``cap`` chunks, and the file's reason: ``reason`` (an extraction's
    "truncated: ..." or ``""``), or a "truncated" reason naming the chunk cap when it applied
    (``cut``: the text was already cut to `chunk_budget_chars` before chunking)."""
    if len(chunks) <= cap and not cut:
        return chunks, reason
    return chunks[:cap], (f"truncated: more than {cap} chunks (max_chunks_per_file); "
                          f"the first {min(cap, len(chunks))} are indexed")


# Characters per call to ``count_tokens``: the tokenizer holds every encoding of a call at once
# (~100 bytes per token), so one call over a whole multi-megabyte text peaks at hundreds of MB.
_COUNT_BATCH_CHARS = 256 * 1024


def batched(count_tokens: CountTokens) -> CountTokens:
    """``count_tokens`` called on consecutive slices of at most `_COUNT_BATCH_CHARS` characters."""
    def count(texts: Sequence[str]) -> list[int]:
        out: list[int] = []
        start = size = 0
        for end, text in enumerate(texts):
            if size and size + len(text) > _COUNT_BATCH_CHARS:
                out.extend(count_tokens(texts[start:end]))
                start, size = end, 0
            size += len(text)
        if start < len(texts):
            out.extend(count_tokens(texts[start:]))
        return out
    return count


def _line_starts(lines: list[str]) -> list[int]:
    starts = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    return starts
