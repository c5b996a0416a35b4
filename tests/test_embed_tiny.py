"""Any local HF directory goes through the same path: tiny random BERT and XLM-R models made here.

Each model is written with numpy + safetensors + tokenizers (no download, no torch), converted by
`prepare_model`, run by `Encoder`, and compared with a numpy forward pass written in this file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from semdexd.embed.encoder import Encoder
from semdexd.embed.model import prepare_model
from semdexd.embed.tokens import TokenCounter

WORDS = ("the quick brown fox jumps over lazy dog cat sat on mat hello world search query passage "
         "index file code def return class import from data model token vector").split()
HIDDEN, HEADS, LAYERS, INTER, MAX_SEQ = 32, 4, 2, 64, 16


def _tokenizer(kind: str) -> tuple[Tokenizer, int]:
    """A WordPiece tokenizer: BERT-style ([CLS] x [SEP]) or RoBERTa-style (<s> x </s>, <pad>=1)."""
    if kind == "bert":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        cls, sep, unk = "[CLS]", "[SEP]", "[UNK]"
    else:
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        cls, sep, unk = "<s>", "</s>", "<unk>"
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(specials + [":"] + WORDS + letters)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return tok, len(vocab)


def make_tiny_model(path: Path, kind: str, pooling: str, prompts: dict[str, str] | None, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a random ``kind`` ("bert" | "xlm-roberta") HF + sentence-transformers dir; return weights."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    tok, vocab_size = _tokenizer(kind)
    tok.save(str(path / "tokenizer.json"))
    pad = 0 if kind == "bert" else 1
    positions = MAX_SEQ + (0 if kind == "bert" else pad + 1)
    config = {"model_type": kind, "architectures": ["BertModel" if kind == "bert" else "XLMRobertaModel"],
              "hidden_size": HIDDEN, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
              "intermediate_size": INTER, "hidden_act": "gelu", "max_position_embeddings": positions,
              "type_vocab_size": 2 if kind == "bert" else 1, "vocab_size": vocab_size, "pad_token_id": pad,
              "layer_norm_eps": 1e-12 if kind == "bert" else 1e-5, "position_embedding_type": "absolute"}
    (path / "config.json").write_text(json.dumps(config))
    w: dict[str, np.ndarray] = {}

    def add(name: str, *shape: int, scale: float = 0.3, base: float = 0.0) -> None:
        w[name] = (base + scale * rng.standard_normal(shape)).astype(np.float32)

    prefix = "" if kind == "bert" else "roberta."   # one checkpoint with, one without the prefix
    add(f"{prefix}embeddings.word_embeddings.weight", vocab_size, HIDDEN, scale=1.0)
    add(f"{prefix}embeddings.position_embeddings.weight", positions, HIDDEN)
    add(f"{prefix}embeddings.token_type_embeddings.weight", config["type_vocab_size"], HIDDEN)
    add(f"{prefix}embeddings.LayerNorm.weight", HIDDEN, scale=0.1, base=1.0)
    add(f"{prefix}embeddings.LayerNorm.bias", HIDDEN, scale=0.1)
    for i in range(LAYERS):
        b = f"{prefix}encoder.layer.{i}"
        for name in ("query", "key", "value"):
            add(f"{b}.attention.self.{name}.weight", HIDDEN, HIDDEN)
            add(f"{b}.attention.self.{name}.bias", HIDDEN, scale=0.1)
        add(f"{b}.attention.output.dense.weight", HIDDEN, HIDDEN)
        add(f"{b}.attention.output.dense.bias", HIDDEN, scale=0.1)
        add(f"{b}.attention.output.LayerNorm.weight", HIDDEN, scale=0.1, base=1.0)
        add(f"{b}.attention.output.LayerNorm.bias", HIDDEN, scale=0.1)
        add(f"{b}.intermediate.dense.weight", INTER, HIDDEN)
        add(f"{b}.intermediate.dense.bias", INTER, scale=0.1)
        add(f"{b}.output.dense.weight", HIDDEN, INTER)
        add(f"{b}.output.dense.bias", HIDDEN, scale=0.1)
        add(f"{b}.output.LayerNorm.weight", HIDDEN, scale=0.1, base=1.0)
        add(f"{b}.output.LayerNorm.bias", HIDDEN, scale=0.1)
    save_file(w, str(path / "model.safetensors"))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": pooling == "cls",
         "pooling_mode_mean_tokens": pooling == "mean"}))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_SEQ}))
    if prompts is not None:
        (path / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))
    return {k[len(prefix):]: v for k, v in w.items()}


# ---------------------------------------------------------------- numpy reference


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], name: str, eps: float) -> np.ndarray:
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[f"{name}.weight"] + w[f"{name}.bias"]


def _dense(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


_erf = np.vectorize(math.erf)


def reference_forward(w: dict[str, np.ndarray], ids: list[int], kind: str, pooling: str) -> np.ndarray:
    """Post-norm BERT / XLM-R encoder on one sequence, pooled and normalised, in float64."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    eps = 1e-12 if kind == "bert" else 1e-5
    start = 0 if kind == "bert" else 2
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][start:start + n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w, "embeddings.LayerNorm", eps)
    dh = HIDDEN // HEADS
    for i in range(LAYERS):
        b = f"encoder.layer.{i}"
        q, k, v = (_dense(x, w, f"{b}.attention.self.{m}").reshape(n, HEADS, dh).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = (scores / scores.sum(-1, keepdims=True)) @ v
        x = _layer_norm(x + _dense(context.transpose(1, 0, 2).reshape(n, HIDDEN), w, f"{b}.attention.output.dense"),
                        w, f"{b}.attention.output.LayerNorm", eps)
        h = _dense(x, w, f"{b}.intermediate.dense")
        h = 0.5 * h * (1 + _erf(h / math.sqrt(2)))
        x = _layer_norm(x + _dense(h, w, f"{b}.output.dense"), w, f"{b}.output.LayerNorm", eps)
    pooled = x[0] if pooling == "cls" else x.mean(0)
    return pooled / np.linalg.norm(pooled)


# ---------------------------------------------------------------- tests

E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "def return class", "zzz qqq"]


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_tiny_model_matches_numpy_reference(tmp_path, make_config, kind, pooling):
    weights = make_tiny_model(tmp_path / f"tiny-{kind}", kind, pooling, E5_PROMPTS)
    cfg = make_config(tmp_path, model={"name": str(tmp_path / f"tiny-{kind}"), "compute_type": "float32"},
                      paths={"models_dir": tmp_path / "models"})
    info = prepare_model(cfg)
    assert (info.dim, info.max_tokens, info.pooling) == (HIDDEN, MAX_SEQ, pooling)
    assert (info.query_prefix, info.passage_prefix) == ("query: ", "passage: ")
    tokenizer = Tokenizer.from_file(str(info.tokenizer_file))
    vectors = Encoder(info).encode(TEXTS).vectors
    for text, vector in zip(TEXTS, vectors):
        expected = reference_forward(weights, tokenizer.encode(text).ids, kind, pooling)
        assert np.allclose(vector, expected, atol=2e-4), (text, float(vector @ expected))


def test_cls_and_mean_pooling_differ_and_prefixes_change_the_vector(tmp_path, make_config):
    infos = {}
    for pooling in ("mean", "cls"):
        make_tiny_model(tmp_path / f"tiny-{pooling}", "bert", pooling, E5_PROMPTS, seed=1)
        infos[pooling] = prepare_model(make_config(tmp_path, model={"name": str(tmp_path / f"tiny-{pooling}")},
                                                   paths={"models_dir": tmp_path / "models"}))
    mean, cls = (Encoder(infos[p]).encode(["hello world"]).vectors[0] for p in ("mean", "cls"))
    assert float(mean @ cls) < 0.999
    encoder = Encoder(infos["mean"])
    plain, query, passage = encoder.encode(["hello world", "query: hello world", "passage: hello world"]).vectors
    assert float(plain @ query) < 0.999 and float(query @ passage) < 0.999


def test_changing_the_pooling_file_changes_the_model_id(tmp_path, make_config):
    make_tiny_model(tmp_path / "tiny", "bert", "mean", E5_PROMPTS)
    cfg = make_config(tmp_path, model={"name": str(tmp_path / "tiny")}, paths={"models_dir": tmp_path / "models"})
    before = prepare_model(cfg)
    (tmp_path / "tiny" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    after = prepare_model(cfg)
    assert after.pooling == "cls" and after.model_id != before.model_id


def test_known_model_names_get_their_prefixes(tmp_path, make_config):
    make_tiny_model(tmp_path / "multilingual-e5-tiny", "xlm-roberta", "mean", prompts=None)
    make_tiny_model(tmp_path / "plain-tiny", "bert", "mean", prompts=None)
    models = {"models_dir": tmp_path / "models"}
    e5 = prepare_model(make_config(tmp_path, model={"name": str(tmp_path / "multilingual-e5-tiny")}, paths=models))
    plain = prepare_model(make_config(tmp_path, model={"name": str(tmp_path / "plain-tiny")}, paths=models))
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")
    assert (plain.query_prefix, plain.passage_prefix) == ("", "")


def test_truncation_at_max_tokens_and_untruncated_counts(tmp_path, make_config):
    make_tiny_model(tmp_path / "tiny", "bert", "mean", E5_PROMPTS)
    info = prepare_model(make_config(tmp_path, model={"name": str(tmp_path / "tiny"), "compute_type": "float32"},
                                     paths={"models_dir": tmp_path / "models"}))
    long_text = " ".join(WORDS)                       # 30 words -> 30 tokens + prefix + 2 special
    assert TokenCounter(info).count([long_text]) == [len(WORDS) + 4]   # "passage", ":" + [CLS] [SEP]
    encoder = Encoder(info)
    head = " ".join(WORDS[:MAX_SEQ - 2])               # what survives truncation
    a, b = encoder.encode([long_text, head + " " + " ".join(WORDS[::-1])]).vectors
    assert np.allclose(a, b, atol=1e-6)
