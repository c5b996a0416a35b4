"""The bundled model: conversion, fidelity against sentence-transformers, token counting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from semdexd.embed.encoder import Encoder
from semdexd.embed.model import ModelError, ModelInfo, prepare_model
from semdexd.embed import tokens
from semdexd.embed.text import clean
from semdexd.embed.tokens import TokenCounter, load_tokenizer
from tests.support import repository_lines

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))


def encode_all(info: ModelInfo, texts: list[str], batch: int = 4) -> np.ndarray:
    encoder = Encoder(info)
    return np.concatenate([encoder.encode(texts[i:i + batch]).vectors for i in range(0, len(texts), batch)])


def test_float32_matches_sentence_transformers(tmp_path, make_config, reference):
    info = prepare_model(make_config(tmp_path, model={"compute_type": "float32"}))
    texts = [item["text"] for item in reference["items"]]
    expected = np.array([item["vector"] for item in reference["items"]], dtype=np.float32)
    vectors = encode_all(info, texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, expected).min() >= 0.9999


def test_int8_close_to_sentence_transformers(model_info, reference):
    assert model_info.compute_type == "int8"
    items = [item for item in reference["items"] if item["tokens"] > 2]  # "" is [CLS][SEP] only: 0.982
    texts = [item["text"] for item in items]
    expected = np.array([item["vector"] for item in items], dtype=np.float32)
    assert cosines(encode_all(model_info, texts), expected).min() >= 0.99


def test_bundled_model_description(model_info):
    assert model_info.dim == 384
    assert model_info.max_tokens == 256            # sentence_bert_config, not the tokenizer's 128
    assert model_info.pooling == "mean" and model_info.normalize
    assert model_info.query_prefix == "" and model_info.passage_prefix == ""
    assert model_info.model_id.startswith("all-MiniLM-L6-v2:int8:")
    assert (model_info.ct2_dir / "model.bin").is_file() and model_info.tokenizer_file.is_file()
    assert ModelInfo.from_dict(json.loads(json.dumps(model_info.to_dict()))) == model_info


def test_token_counter_matches_reference_tokenizer(model_info, reference):
    counter = TokenCounter(model_info)
    texts = [item["text"] for item in reference["items"]]
    assert counter.count(texts) == [item["tokens"] for item in reference["items"]]
    assert counter.count([]) == []
    assert max(counter.count(texts)) > model_info.max_tokens   # counts are not truncated
    assert counter.count(["bad \udcff byte"])[0] > 2             # lone surrogates do not raise


def test_token_counter_pieces_add_up_to_whole_texts(model_info, monkeypatch):
    """MiniLM's counts are sums over memoised pieces (cut at white space and ASCII punctuation,
    added tokens whole): equal to the tokenizer's count of each whole text on every line of the
    repository and on texts made to break the cut, also while the memo turns over."""
    monkeypatch.setattr(tokens, "MEMO_WORDS", 500)    # many generations over these texts
    counter = TokenCounter(model_info)
    assert counter.cut == "pieces"
    tricky = ["[CLS]x[SEP]", "a[MASK]]b", "*[cls]* [[SEP]]", "[UNK", "x" * 150 + ".y", "y." + "x" * 150,
              "a\u0301.b", "東京[SEP]都の", "bad \udcff(byte)", "tab\tand\u00a0nbsp", "ﬁ,ﬂ", "»guillemets«",
              "snake_case.attr(arg=1)", "2.5e-3", "#!/usr/bin/env python3", "e-mail@example.org"]
    texts = repository_lines() + tricky
    tokenizer = load_tokenizer(model_info.tokenizer_file, None)
    whole = [len(e.ids) for e in tokenizer.encode_batch_fast([clean(t) for t in texts])]
    assert counter.count(texts) == whole
    assert counter.count(list(reversed(texts))) == whole[::-1]    # from the memo this time


def test_prepare_is_cheap_and_keyed_by_compute_type(tmp_path, make_config, model_info):
    cfg = make_config(tmp_path)
    before = os.stat(model_info.ct2_dir / "model.bin").st_mtime_ns
    again = prepare_model(cfg)
    assert again == model_info
    assert os.stat(model_info.ct2_dir / "model.bin").st_mtime_ns == before
    f32 = prepare_model(make_config(tmp_path, model={"compute_type": "float32"}))
    assert f32.model_id != model_info.model_id and f32.ct2_dir != model_info.ct2_dir
    assert not [p for p in cfg.paths.models_dir.iterdir() if p.name.startswith(".tmp-")]


def test_lower_max_tokens_and_prefix_overrides(tmp_path, make_config, model_info):
    info = prepare_model(make_config(tmp_path, model={"max_tokens": 128, "query_prefix": "q: "}))
    assert info.max_tokens == 128 and info.model_id != model_info.model_id
    assert info.query_prefix == "q: " and info.passage_prefix == ""
    higher = prepare_model(make_config(tmp_path, model={"max_tokens": 4096}))
    assert higher.max_tokens == 256 and higher.model_id == model_info.model_id


def test_conversion_into_fresh_models_dir_is_atomic(tmp_path, make_config):
    models = tmp_path / "models"
    info = prepare_model(make_config(tmp_path, paths={"models_dir": models}))
    assert [p.name for p in models.iterdir() if p.is_dir()] == [info.ct2_dir.name]


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no config.json"),
    (lambda d: (d / "config.json").write_text("{not json"), "cannot read"),
    (lambda d: (d / "config.json").write_text(json.dumps({"model_type": "gpt2"})), "unsupported model_type"),
    (lambda d: (d / "config.json").write_text(json.dumps(
        {"model_type": "bert", "num_hidden_layers": 1, "num_attention_heads": 1, "hidden_size": 4,
         "vocab_size": 10})), "no model.safetensors"),
])
def test_unusable_model_dir_is_a_clear_error(tmp_path, make_config, setup, message):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    setup(model_dir)
    with pytest.raises(ModelError, match=message):
        prepare_model(make_config(tmp_path, model={"name": str(model_dir)}))


def test_unknown_name_and_compute_type(tmp_path, make_config):
    with pytest.raises(ModelError, match="neither a bundled model"):
        prepare_model(make_config(tmp_path, model={"name": "no-such-model"}))
    with pytest.raises(ModelError, match="compute_type"):
        prepare_model(make_config(tmp_path, model={"compute_type": "int3"}))
