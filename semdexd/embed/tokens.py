"""`TokenCounter`: how many tokens the model sees for a passage, for the chunker's budgets.

Chunking counts every line of every file, and the tokenizer costs ~10 µs per word it is given,
most of the time a file takes to read. The bundled tokenizers cut text at white space before
anything else (MiniLM's, like every BERT tokenizer, also around each punctuation character) and
normalise character by character, so a text's count is the sum of its pieces' counts plus the
model's fixed overhead (special tokens, passage prefix). Pieces are counted once and remembered
(`MEMO_WORDS`): MiniLM's pieces are the text cut at white space and ASCII punctuation (an
identifier's parts come back far more often than the identifier: ~4x fewer sent to the
tokenizer on real code than whole words), e5's the white-space separated words. Whichever cut is
used must give the tokenizer's own counts on `PROBE` (checked at construction: a local model may
split or normalise otherwise); with neither, whole texts are counted, as is any text ending in
white space (SentencePiece tokenizers count a trailing space).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from semdexd.embed.text import clean

# Parts (pieces or words) in a generation of the memo (~3 MB). When one is full a new one starts,
# and a part of the last one is carried over when met again: a tree's common words come back
# within a few files and stay, its rare identifiers never come back and go. (Starting afresh
# instead lost the common words too: on 1,957 files of site-packages, 578k words sent to the
# tokenizer instead of 478k.)
MEMO_WORDS = 20_000

# Lines of the kinds a tree holds: code, prose with punctuation, accents, other scripts, symbols.
PROBE = (
    "def chunk_text(text: str, *, file_type: str) -> list[Chunk]:  # the 1st cut",
    "        return {'key': value[0], \"other\": f(x)**2}",
    "Les élèves ont déjà étudié l'œuvre — naïve, façade, Straße, Ærø; ¿qué tal? ¡Olé!",
    "東京都の天気は晴れです。北京大学的学生们在图书馆里学习。서울의 날씨",
    "Привет, мир! Γειά σου κόσμε. مرحبا بالعالم שלום עולם हिन्दी ไทย",
    "URL: https://example.org/a_b-c?d=1&e=%20 e-mail: someone@example.com",
    "emoji 🙂👍🏽 math ∑∫√∞ ≤≥ ½ ﬁ ligature, tab\tseparated\tvalues, 3.14159e-10",
    "\t  indented \u00a0 with\u2003odd   spaces",
    "tokens: [CLS] *[SEP]* [cls] x[MASK]y <s></s> <mask> [UNK]] ##ville",
)

Split = Callable[[str], list[str]]


def piece_split(tokenizer: Tokenizer) -> Split | None:
    """For a tokenizer that isolates each punctuation character before anything else (BERT's
    pre-tokenizer), a cut of texts at white space and around each ASCII punctuation character
    that keeps its added tokens (``[CLS]``...) whole; None for any other tokenizer, or one whose
    added tokens could be matched across such a cut."""
    if not isinstance(tokenizer.pre_tokenizer, BertPreTokenizer):
        return None
    tokens = tokenizer.get_added_tokens_decoder().values()
    if any(t.single_word or t.normalized or not t.content or t.content[0] not in string.punctuation for t in tokens):
        return None
    added = sorted((t.content for t in tokens), key=len, reverse=True)
    punctuation = re.escape(string.punctuation)
    return re.compile("|".join([*map(re.escape, added), f"[^\\s{punctuation}]+", f"[{punctuation}]"])).findall


def load_tokenizer(path: Path, max_tokens: int | None) -> Tokenizer:
    """``tokenizer.json`` without padding, truncating at ``max_tokens`` (None: no truncation)."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    if max_tokens:
        tokenizer.enable_truncation(max_length=max_tokens)
    else:
        tokenizer.no_truncation()
    return tokenizer


class Tokenized(Protocol):
    """What counting needs of a model (a `semdexd.embed.model.ModelInfo` has it)."""

    @property
    def tokenizer_file(self) -> Path: ...

    @property
    def passage_prefix(self) -> str: ...


class TokenCounter:
    """Counts tokens as the model sees a passage (prefix and special tokens included)."""

    def __init__(self, info: Tokenized, tokenizer: Tokenizer | None = None) -> None:
        """``tokenizer``: a non-truncating one (`load_tokenizer(..., None)`) to share (~7 MB each)."""
        self._tokenizer = tokenizer or load_tokenizer(info.tokenizer_file, None)
        self._prefix = info.passage_prefix
        # special tokens and prefix: what a one-word passage costs beyond its word
        self._overhead = len(self._tokenizer.encode(self._prefix + "a").ids) - \
            len(self._tokenizer.encode("a", add_special_tokens=False).ids)
        self._memo: dict[str, int] = {}
        self._old: dict[str, int] = {}     # the memo's last generation
        self.cut, self._split = self._exact_cut()

    def _exact_cut(self) -> tuple[str, Split | None]:
        """The first cut whose parts' counts add up to the tokenizer's on `PROBE`: ``"pieces"``
        (`piece_split`), ``"words"`` (white space), else ``"whole"`` (None: texts counted whole)."""
        whole = self._whole(PROBE)
        cuts: tuple[tuple[str, Split | None], ...] = (("pieces", piece_split(self._tokenizer)), ("words", str.split))
        for name, split in cuts:
            if split is not None and self._by_parts(PROBE, split) == whole:
                return name, split
        return "whole", None

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, without truncation (may exceed the model's maximum)."""
        if not texts:
            return []
        if self._split is None:
            return self._whole(texts)
        tails = [i for i, t in enumerate(texts) if not t or t[-1].isspace()]
        counts = self._by_parts(texts, self._split)
        if tails:
            for i, n in zip(tails, self._whole([texts[i] for i in tails])):
                counts[i] = n
        return counts

    def _whole(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch_fast([self._prefix + clean(t) for t in texts])
        return [len(e.ids) for e in encodings]

    def _by_parts(self, texts: Sequence[str], split: Split) -> list[int]:
        """The overhead plus the count of each part of each text cut by ``split`` (memoised)."""
        memo = self._memo
        parts = [split(t) for t in texts]
        missing = set(chain.from_iterable(parts)).difference(memo)   # a dict: O(len(missing))
        if missing:
            if len(memo) + len(missing) > MEMO_WORDS:   # a new generation; the last one is kept
                self._old, self._memo = memo, {}
                memo = self._memo
                missing = set(chain.from_iterable(parts))
            old = self._old
            known = [w for w in missing if w in old]
            for word in known:
                memo[word] = old[word]
            fresh = list(missing.difference(known))
            if fresh:
                encodings = self._tokenizer.encode_batch_fast([clean(w) for w in fresh], add_special_tokens=False)
                memo.update(zip(fresh, (len(e.ids) for e in encodings)))
        get = memo.__getitem__
        return [self._overhead + sum(map(get, cut)) for cut in parts]
