"""Hugging Face encoder (safetensors) -> CTranslate2 model directory, with numpy only (no torch).

Mirrors ``ctranslate2.converters.transformers`` ``BertLoader`` / ``XLMRobertaLoader``: a post-norm
Transformer encoder with two source embeddings (words + token types) merged by addition, learned
absolute positions and a layer norm after the embeddings. The pooler of ``BertModel`` is left out
(sentence-transformers pools ``last_hidden_state`` itself), which saves memory and time.

`convert_encoder(src, out, quantization)` writes ``model.bin``, ``config.json`` and
``vocabulary.json`` into ``out`` (which must exist and be empty) and returns the number of
non-embedding parameters (used for the FLOP estimate of the benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

from semdexd.embed.errors import ModelError

# model_type -> prefix of the weight names in a *ForXxx / full-model checkpoint
ENCODER_TYPES: dict[str, str] = {"bert": "bert.", "xlm-roberta": "roberta.", "roberta": "roberta."}

_ACTIVATIONS: dict[str, common_spec.Activation] = {
    "gelu": common_spec.Activation.GELU,
    "gelu_python": common_spec.Activation.GELU,
    "gelu_new": common_spec.Activation.GELUTanh,
    "gelu_pytorch_tanh": common_spec.Activation.GELUTanh,
    "gelu_fast": common_spec.Activation.GELUTanh,
    "relu": common_spec.Activation.RELU,
    "silu": common_spec.Activation.SWISH,
    "swish": common_spec.Activation.SWISH,
}

QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32")


def check_architecture(config: Mapping[str, Any]) -> None:
    """Raise `ModelError` unless ``config`` (a HF config.json) describes a supported encoder."""
    model_type = config.get("model_type")
    if model_type not in ENCODER_TYPES:
        raise ModelError(f"unsupported model_type {model_type!r}: expected one of {sorted(ENCODER_TYPES)}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"unsupported position_embedding_type {config['position_embedding_type']!r}")
    if config.get("hidden_act", "gelu") not in _ACTIVATIONS:
        raise ModelError(f"unsupported hidden_act {config.get('hidden_act')!r}")
    for key in ("num_hidden_layers", "num_attention_heads", "hidden_size", "vocab_size"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise ModelError(f"config.json: {key} missing or invalid")


def load_weights(src: Path, model_type: str) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as float32 numpy arrays, names without the ``bert.``-style prefix."""
    from safetensors.numpy import load_file

    files = sorted(src.glob("model*.safetensors"))
    if not files:
        raise ModelError(f"{src}: no model.safetensors (PyTorch .bin checkpoints need torch; not supported)")
    tensors: dict[str, np.ndarray] = {}
    try:
        for file in files:
            tensors.update(load_file(str(file)))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"{src}: cannot read weights: {exc}") from None
    prefix = ENCODER_TYPES[model_type]
    out: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            name = name[len(prefix):]
        if np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float32)
        out[name] = value
    return out


def _take(weights: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return weights[name]
    except KeyError:
        raise ModelError(f"weight {name!r} missing from the checkpoint") from None


def _linear(spec: common_spec.LinearSpec, weights: Mapping[str, np.ndarray], name: str) -> None:
    spec.weight = _take(weights, f"{name}.weight")
    if f"{name}.bias" in weights:
        spec.bias = weights[f"{name}.bias"]


def _layer_norm(spec: common_spec.LayerNormSpec, weights: Mapping[str, np.ndarray], name: str) -> None:
    spec.gamma = _take(weights, f"{name}.weight")
    spec.beta = _take(weights, f"{name}.bias")


def _fuse_qkv(spec: common_spec.LinearSpec, weights: Mapping[str, np.ndarray], name: str) -> None:
    parts = [f"{name}.query", f"{name}.key", f"{name}.value"]
    spec.weight = np.concatenate([_take(weights, f"{p}.weight") for p in parts])
    spec.bias = np.concatenate([_take(weights, f"{p}.bias") for p in parts])


def build_spec(config: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> transformer_spec.TransformerEncoderModelSpec:
    """Fill a CTranslate2 encoder spec from HF ``config`` and prefix-free ``weights``."""
    check_architecture(config)
    encoder = transformer_spec.TransformerEncoderSpec(
        config["num_hidden_layers"],
        config["num_attention_heads"],
        pre_norm=False,
        activation=_ACTIVATIONS[config.get("hidden_act", "gelu")],
        layernorm_embedding=True,
        num_source_embeddings=2,
        embeddings_merge=common_spec.EmbeddingsMerge.ADD,
    )
    spec = transformer_spec.TransformerEncoderModelSpec(encoder, pooling_layer=False)
    spec.encoder.scale_embeddings = False
    spec.encoder.embeddings[0].weight = _take(weights, "embeddings.word_embeddings.weight")
    spec.encoder.embeddings[1].weight = _take(weights, "embeddings.token_type_embeddings.weight")
    positions = _take(weights, "embeddings.position_embeddings.weight")
    if config["model_type"] != "bert":
        # RoBERTa numbers positions from padding_idx + 1: drop the unused leading rows.
        positions = positions[int(config.get("pad_token_id", 1)) + 1:]
    spec.encoder.position_encodings.encodings = positions
    _layer_norm(spec.encoder.layernorm_embedding, weights, "embeddings.LayerNorm")
    for i, layer in enumerate(spec.encoder.layer):
        base = f"encoder.layer.{i}"
        _fuse_qkv(layer.self_attention.linear[0], weights, f"{base}.attention.self")
        _linear(layer.self_attention.linear[1], weights, f"{base}.attention.output.dense")
        _layer_norm(layer.self_attention.layer_norm, weights, f"{base}.attention.output.LayerNorm")
        _linear(layer.ffn.linear_0, weights, f"{base}.intermediate.dense")
        _linear(layer.ffn.linear_1, weights, f"{base}.output.dense")
        _layer_norm(layer.ffn.layer_norm, weights, f"{base}.output.LayerNorm")
    return spec


def layer_params(config: Mapping[str, Any]) -> int:
    """Parameters in the encoder layers (the matmuls a token pays for), embeddings excluded."""
    h, i = config["hidden_size"], config.get("intermediate_size", 4 * config["hidden_size"])
    per_layer = 4 * h * h + 2 * h * i + 4 * h + i + h + 4 * h
    return int(config["num_hidden_layers"] * per_layer)


def convert_encoder(src: Path, out: Path, config: Mapping[str, Any], vocabulary: list[str],
                    quantization: str) -> int:
    """Convert the checkpoint in ``src`` into ``out`` (existing, empty); return `layer_params`."""
    if quantization not in QUANTIZATIONS:
        raise ModelError(f"compute_type {quantization!r} not one of {', '.join(QUANTIZATIONS)}")
    return convert_weights(load_weights(src, config["model_type"]), out, config, vocabulary, quantization, src)


def convert_weights(weights: Mapping[str, np.ndarray], out: Path, config: Mapping[str, Any],
                    vocabulary: list[str], quantization: str, where: Path) -> int:
    """`convert_encoder` for weights already in memory (prefix-free HF names, float32); ``where``
    names their origin in errors."""
    if quantization not in QUANTIZATIONS:
        raise ModelError(f"compute_type {quantization!r} not one of {', '.join(QUANTIZATIONS)}")
    spec = build_spec(config, weights)
    vocab_size = spec.get_vocabulary_size()
    tokens = list(vocabulary[:vocab_size])
    tokens += [f"<extra_id_{i}>" for i in range(vocab_size - len(tokens))]
    spec.register_vocabulary(tokens)
    unk = "[UNK]" if "[UNK]" in tokens else "<unk>"
    spec.config.unk_token = unk
    spec.config.layer_norm_epsilon = float(config.get("layer_norm_eps", 1e-12))
    try:
        spec.validate()
    except ValueError as exc:
        raise ModelError(f"{where}: weights do not fit the encoder: {exc}") from None
    spec.optimize(quantization=quantization)
    spec.save(str(out))
    return layer_params(config)
