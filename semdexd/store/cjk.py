"""Words in scripts written without spaces (Chinese, Japanese), as the manifest indexes them.

FTS5's ``unicode61`` tokenizer reads a run of Han/Kana as one "word" (a whole sentence, often
glued to Latin letters: ``pythonで使う``), so no query word ever matches it. The manifest keeps a
second FTS5 table, ``chunks_cjk``, for the chunks that hold such text, and writes into it each
chunk's `index_text`: every letter/digit run split where the script changes; a Latin piece is
itself, a CJK run is its overlapping character bigrams followed by its last character
(``保存方法`` -> ``保存 存方 方法 法``). Then

* a 2+ character word is the phrase of its bigrams (most Chinese words are 2 characters, where a
  trigram index finds nothing without a table scan);
* a 1-character word is the prefix query ``"c" *``: every character of a run starts one token
  (the last one its own), so the prefix finds exactly the chunks that hold it;
* a Latin word glued to CJK (``Docker`` in ``Dockerを使う``) is a token of its own.

Han, Hiragana, Katakana (half-width too) count as CJK; Hangul does not (Korean is written with
spaces, which ``unicode61`` handles). Also here: `fold`, the diacritic folding of
``remove_diacritics 2`` (``Käse`` and ``kase`` are one token), so that the evidence read from a
chunk's text agrees with what FTS5 matched.
"""

from __future__ import annotations

import re
import unicodedata

# Han (BMP, compatibility, extensions B+), Hiragana, Katakana (+ phonetic extensions, half-width),
# the iteration/closing marks 々〆〇. No Hangul, no CJK punctuation (not \w anyway).
CJK_CLASS = ("\u3005-\u3007\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
             "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_CJK = re.compile(f"[{CJK_CLASS}]")
_TOKEN = re.compile(r"[^\W_]+")
_PIECE = re.compile(f"[{CJK_CLASS}]+|[^{CJK_CLASS}]+")


def _fold_table() -> dict[int, str]:
    """Lower-case Latin letters with diacritics -> their base letter; combining marks -> ''."""
    table: dict[int, str] = {c: "" for c in range(0x300, 0x370)}
    for code in [*range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        parts = unicodedata.normalize("NFD", chr(code))
        if len(parts) > 1 and parts[0].isascii() and all(unicodedata.combining(p) for p in parts[1:]):
            table[code] = parts[0]
    return table


_FOLD = _fold_table()
# Where `_FOLD` can change anything: the text is searched for these first (str.translate with a
# dict costs ~0.1 us per character of any non-ASCII text: ~5 ms a search on the docs dev set).
_FOLDABLE = re.compile("[" + "".join(chr(c) for c in sorted(_FOLD)) + "]")
_SPECIAL = re.compile("[" + "".join(chr(c) for c in sorted(_FOLD)) + CJK_CLASS + "]")  # foldable or CJK


def folded_and_latin(text: str) -> tuple[str, str]:
    """(`fold` of ``text``, the same with CJK blanked: what Latin words are looked for in), from
    one scan when the text holds nothing to fold and no CJK (most text)."""
    low = text.lower()
    if low.isascii() or _SPECIAL.search(low) is None:
        return low, low
    low = fold(low)
    return low, blank(low) if has_cjk(low) else low


def fold(text: str) -> str:
    """``text`` lower-cased with Latin diacritics removed (as ``unicode61 remove_diacritics 2``
    matches: ``Käse`` -> ``kase``, ``naïve`` -> ``naive``; ``ß`` stays). ASCII text is only
    lower-cased; kana are never changed (``が`` stays ``が``)."""
    low = text.lower()
    if low.isascii() or _FOLDABLE.search(low) is None:
        return low
    return _FOLDABLE.sub(lambda m: _FOLD.get(ord(m[0]), m[0]), low)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds at least one CJK character."""
    return _CJK.search(text) is not None


def blank(text: str) -> str:
    """``text`` with every CJK character replaced by a space (same length)."""
    return _CJK.sub(" ", text)


def is_cjk_unit(term: str) -> bool:
    """Whether ``term`` (a unit from `units`) is CJK (its first character tells)."""
    return bool(term) and _CJK.match(term) is not None


def run_units(run: str) -> list[str]:
    """A CJK run's query units: its overlapping bigrams, or the run itself when 1 character."""
    return [run] if len(run) < 2 else [run[i:i + 2] for i in range(len(run) - 1)]


def pieces(token: str) -> list[str]:
    """``token`` split where it changes between CJK and other letters (``pythonで使う`` ->
    ``python``, ``で使う``); a token without CJK is returned whole."""
    return _PIECE.findall(token) if has_cjk(token) else [token]


def units(text: str) -> list[str]:
    """The folded letter/digit runs of ``text``, with CJK runs as their `run_units`."""
    folded = fold(text)
    if folded.isascii() or not has_cjk(folded):  # one scan; most text has no CJK
        return _TOKEN.findall(folded)
    out: list[str] = []
    for token in _TOKEN.findall(folded):
        for piece in pieces(token):
            out += run_units(piece) if is_cjk_unit(piece) else [piece]
    return out


def index_text(text: str) -> str | None:
    """What ``chunks_cjk`` indexes for a chunk (see the module docstring), or None when the text
    holds no CJK (such chunks have no row there). The table is contentless: a row is deleted by
    giving these same terms again, so a change to what this returns (or to `has_cjk`, `fold`)
    needs a new schema version that rebuilds the table."""
    if not has_cjk(text):
        return None
    out: list[str] = []
    for token in _TOKEN.findall(fold(text)):
        for piece in pieces(token):
            out += run_units(piece) + [piece[-1]] if is_cjk_unit(piece) and len(piece) > 1 else [piece]
    return " ".join(out)


def fts_term(unit: str) -> str:
    """The ``chunks_cjk`` query for one unit: a 1-character CJK unit as a prefix (``"c" *``),
    anything else as a quoted token."""
    quoted = '"' + unit.replace('"', "") + '"'
    return quoted + " *" if len(unit) == 1 and is_cjk_unit(unit) else quoted


def fts_phrase(seq: list[str]) -> str:
    """The ``chunks_cjk`` query for units in a row: one FTS5 phrase, cut after each 1-character
    CJK unit (FTS5 allows a prefix only on a phrase's last token), the parts AND-ed."""
    parts: list[list[str]] = [[]]
    for unit in seq:
        parts[-1].append(unit.replace('"', ""))
        if len(unit) == 1 and is_cjk_unit(unit):
            parts.append([])
    return " AND ".join('"' + " ".join(p) + '"' + (" *" if len(p[-1]) == 1 and is_cjk_unit(p[-1]) else "")
                        for p in parts if p)
