"""In-process encoding: tokenize, run the CTranslate2 encoder, pool, normalise.

`Encoder` is what a worker process holds. Texts arrive exactly as they must be embedded (the
prefix already applied by the pool); each is truncated at ``info.max_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from semdexd.embed.errors import ModelError
from semdexd.embed.model import ModelInfo, load_tokenizer, model_ids

# A question, its paraphrase, an unrelated sentence: any trained embedder puts the first two nearer.
PROBES = ("how do I read a file line by line", "open the file and iterate over each of its lines",
          "a red fox sleeps in the afternoon sun")


@dataclass(frozen=True)
class Encoded:
    """Vectors of one batch (float32, shape [n, dim]) and its token accounting."""

    vectors: np.ndarray
    tokens: int        # real tokens
    padded: int        # tokens computed, padding included (equal to tokens: rows are never padded)


def pool_hidden(hidden: np.ndarray, lengths: np.ndarray, mode: str) -> np.ndarray:
    """Pool ``hidden`` [n, T, d] over the first ``lengths[i]`` positions of each row."""
    if mode == "cls":
        return np.array(hidden[:, 0, :], dtype=np.float32)
    mask = (np.arange(hidden.shape[1])[None, :] < lengths[:, None])[:, :, None]
    if mode == "max":
        return np.asarray(np.where(mask, hidden, -np.inf).max(axis=1), dtype=np.float32)
    summed = (hidden * mask).sum(axis=1, dtype=np.float32)
    counts = np.maximum(lengths, 1).astype(np.float32)[:, None]
    if mode == "mean_sqrt_len":
        return np.asarray(summed / np.sqrt(counts), dtype=np.float32)
    return np.asarray(summed / counts, dtype=np.float32)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class Encoder:
    """One CTranslate2 encoder and its tokenizer; not thread-safe (one caller at a time)."""

    def __init__(self, info: ModelInfo, threads: int = 1, tokenizer: Tokenizer | None = None) -> None:
        """``tokenizer``: one already loaded (`load_tokenizer`, truncating or not) to share
        (tokenizers are thread-safe; each copy costs ~7 MB)."""
        import ctranslate2

        self.info = info
        self._tokenizer = tokenizer or load_tokenizer(info.tokenizer_file, info.max_tokens)
        self._model = ctranslate2.Encoder(str(info.ct2_dir), device="cpu", compute_type=info.compute_type,
                                          intra_threads=threads, inter_threads=1)

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Embed ``texts`` (prefixed, UTF-8-clean). Texts of equal token length share a forward pass;
        no text is ever padded, so a text's vector does not depend on the other texts of the batch
        (with int8, padding changed vectors by up to 1e-2, cosine 0.998; grouping costs no CPU)."""
        if not texts:
            return Encoded(np.zeros((0, self.info.dim), np.float32), 0, 0)
        ids = model_ids(self._tokenizer, texts, self.info.max_tokens)
        groups: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            groups.setdefault(len(row), []).append(i)
        vectors = np.empty((len(ids), self.info.dim), np.float32)
        for length, rows in groups.items():
            output = self._model.forward_batch([ids[i] for i in rows])
            hidden = np.asarray(output.last_hidden_state, dtype=np.float32)
            vectors[rows] = pool_hidden(hidden, np.full(len(rows), length, dtype=np.int64), self.info.pooling)
        if self.info.normalize:
            vectors = normalize(vectors)
        tokens = sum(len(row) for row in ids)
        return Encoded(vectors, tokens, tokens)


def check_output(encoder: Encoder) -> None:
    """Raise `ModelError` unless ``encoder`` computes sane vectors in this process: finite, equal on
    two runs of the same texts, and a paraphrase nearer than an unrelated sentence (`PROBES`).

    CTranslate2 under a W^X memory policy (systemd ``MemoryDenyWriteExecute=``, prctl
    ``PR_SET_MDWE``) raises nothing but returns wrong vectors (different on every call); an index
    built from them is silently useless, so a process that holds an encoder checks it first.
    """
    first, second = encoder.encode(PROBES).vectors, encoder.encode(PROBES).vectors
    where = f"model {encoder.info.name} ({encoder.info.compute_type})"
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        raise ModelError(f"{where}: returned NaN or infinite vectors here; {_HINT}")
    if float(np.abs(first - second).max()) > 1e-3:
        raise ModelError(f"{where}: the same text gave different vectors on two runs; {_HINT}")
    unit = normalize(first)
    if float(unit[0] @ unit[1]) <= float(unit[0] @ unit[2]):
        raise ModelError(f"{where}: a paraphrase is not nearer than an unrelated sentence; the model files "
                         f"may be damaged (delete the converted folder {encoder.info.ct2_dir} to convert "
                         f"again), or {_HINT}")


_HINT = ("CTranslate2 cannot run correctly under this process's memory policy (is MemoryDenyWriteExecute= "
         "or prctl PR_SET_MDWE set? remove it)")
