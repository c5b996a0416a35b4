"""Interim JSON Schemas of the daemon methods the MCP tools call (docs/protocol.md, v1).

Stand-in until the typed API (``semdexd.api.input_schema``) lands; ``client.mcp_tools`` imports
`input_schema` from here in one line, swapped for the typed API's then.
"""

from __future__ import annotations

from typing import Any

_SEARCH: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "description": "what to look for"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 10,
                  "description": "at most this many hits"},
        "mode": {"type": "string", "enum": ["hybrid", "semantic", "lexical"], "default": "hybrid",
                 "description": "hybrid (semantic + lexical, fused), semantic or lexical"},
        "path": {"type": "string", "description": "only files under this folder (or this file)"},
        "glob": {"type": "string", "description": "only paths matching this glob (*.md, src/**/*.py)"},
        "type": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                 "description": "only these file types, by extension without the dot (py)"},
        "since": {"type": "number", "description": "only files modified after this Unix time"},
        "per_file": {"type": "integer", "minimum": 1, "default": 3,
                     "description": "at most this many hits from one file"},
    },
    "required": ["query"],
    "additionalProperties": False,
}

_SIMILAR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "an indexed file"},
        "line": {"type": "integer", "minimum": 1,
                 "description": "use the chunk covering this line (else the whole file)"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 10,
                  "description": "at most this many hits"},
    },
    "required": ["path"],
    "additionalProperties": False,
}

_STATUS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

_SCHEMAS = {"search": _SEARCH, "similar": _SIMILAR, "status": _STATUS}


def input_schema(method: str) -> dict[str, Any]:
    """The JSON Schema of ``method``'s params; KeyError for a method without one here."""
    return _SCHEMAS[method]
