"""`TokenCounter`: how many tokens the model sees for a passage, for the chunker's budgets.

Chunking counts every line of every file, and the tokenizer costs ~19 µs per line of code
(MiniLM; e5 ~33 µs), most of the time a file takes to read. Both bundled tokenizers split text at
white space before anything else and normalise character by character, so a text's count is the
sum of its words' counts plus the model's fixed overhead (special tokens, passage prefix): words
are counted once and remembered (up to `MEMO_WORDS`), which makes counting ~2.7x cheaper on real
trees. A tokenizer for which that sum is not exact (checked on `PROBE` at construction: a local
model may split or normalise otherwise) is asked for whole texts, as is any text ending in white
space (SentencePiece tokenizers count a trailing space).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer

from semdexd.embed.text import clean

# Words remembered, at most (~3 MB); past it the memo starts again (a tree's common words come
# back within a few files, its rare identifiers never do).
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
)


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
        self.by_words = self._whole(PROBE) == self._by_words(PROBE)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, without truncation (may exceed the model's maximum)."""
        if not texts:
            return []
        if not self.by_words:
            return self._whole(texts)
        tails = [i for i, t in enumerate(texts) if not t or t[-1].isspace()]
        if not tails:
            return self._by_words(texts)
        counts = self._by_words(texts)
        for i, n in zip(tails, self._whole([texts[i] for i in tails])):
            counts[i] = n
        return counts

    def _whole(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch_fast([self._prefix + clean(t) for t in texts])
        return [len(e.ids) for e in encodings]

    def _by_words(self, texts: Sequence[str]) -> list[int]:
        """The overhead plus each white-space separated word's own count (from the memo)."""
        memo = self._memo
        words = [t.split() for t in texts]
        missing = {w for split in words for w in split if w not in memo}
        if missing:
            if len(memo) + len(missing) > MEMO_WORDS:
                memo.clear()
                missing = {w for split in words for w in split}
            fresh = list(missing)
            encodings = self._tokenizer.encode_batch_fast([clean(w) for w in fresh], add_special_tokens=False)
            memo.update(zip(fresh, (len(e.ids) for e in encodings)))
        get = memo.__getitem__
        return [self._overhead + sum(map(get, split)) for split in words]
