"""JSON Schema of every method's params, generated from the request types in `types`.

``input_schema(method)`` is what an MCP tool declares as its input schema; ``all_schemas()`` is
the committed ``docs/schema.json``. Regenerate it after changing a request type with::

    python -m semdexd.api.schema > docs/schema.json

(tests/test_api.py fails while the committed file is stale). Standard library only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from semdexd import PROTOCOL_VERSION
from semdexd.api.types import (
    CWD,
    MAX_LIST_ITEMS,
    MAX_STRING,
    METHODS,
    FieldSpec,
    field_specs,
    takes_cwd,
)


def input_schema(method: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``method``'s named params; KeyError for no such method."""
    cls = METHODS[method]
    props: dict[str, Any] = {}
    for spec in field_specs(cls):
        props[spec.wire] = _property(spec)
    if takes_cwd(cls):
        props[CWD] = {"type": "string", "maxLength": MAX_STRING,
                      "description": "absolute directory that relative path params are resolved against"}
    schema: dict[str, Any] = {"type": "object", "description": cls.doc, "properties": props,
                              "additionalProperties": False}
    required = [s.wire for s in field_specs(cls) if s.required]
    if required:
        schema["required"] = required
    return schema


def _property(spec: FieldSpec) -> dict[str, Any]:
    meta = spec.meta
    if spec.kind is tuple:
        item = _scalar(str, meta, for_items=True)
        out: dict[str, Any] = {"anyOf": [item, {"type": "array", "items": item,
                                                "maxItems": int(meta.get("hi") or MAX_LIST_ITEMS)}]}
        if meta.get("lo"):
            out["anyOf"][1]["minItems"] = int(meta["lo"])
    else:
        out = _scalar(spec.kind, meta)
    if spec.optional:
        out = {"anyOf": [out, {"type": "null"}]} if "anyOf" not in out else {"anyOf": [*out["anyOf"], {"type": "null"}]}
    if not spec.required and spec.default is not None:
        out["default"] = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    if meta.get("doc"):
        out["description"] = meta["doc"]
    return out


def _scalar(kind: type, meta: dict[str, Any], for_items: bool = False) -> dict[str, Any]:
    if kind is str:
        out: dict[str, Any] = {"type": "string", "maxLength": meta.get("max_len", MAX_STRING)}
        if meta.get("non_empty") or meta.get("path"):
            out["minLength"] = 1
        if meta.get("choices"):
            out["enum"] = list(meta["choices"])
        return out
    out = {"type": "integer" if kind is int else "number"}
    if not for_items:
        if meta.get("lo") is not None:
            out["minimum"] = meta["lo"]
        if meta.get("hi") is not None:
            out["maximum"] = meta["hi"]
    return out


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every method's params schema, keyed by method name."""
    return {name: input_schema(name) for name in METHODS}


def render() -> str:
    """docs/schema.json's exact text: ``{"protocol": 1, "methods": all_schemas()}``."""
    doc = {"protocol": PROTOCOL_VERSION, "methods": all_schemas()}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
