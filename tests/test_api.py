"""The typed API: one request type per method, validated in one place, schema generated from it.

The pure tests check `parse` and the schema; the last group serves the real handlers (a real
`Service` with the bundled model on a two-file folder) through `Api.handlers()`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from semdexd.api import schema
from semdexd.app.handlers import Api
from semdexd.api.types import (
    METHODS,
    SESSION_METHODS,
    SearchRequest,
    SimilarRequest,
    parse,
    to_params,
)
from semdexd.api.types import ApiError
from semdexd.api.rpc import ERROR_CODES
from tests.support import REPO, Instance, wait_for


def code_of(method: str, params: dict[str, Any]) -> str:
    with pytest.raises(ApiError) as info:
        parse(method, params)
    return info.value.code


# ---------------------------------------------------------------- the method table


def test_the_method_table_is_the_request_types() -> None:
    assert set(METHODS) == {"search", "similar", "status", "reindex", "pause", "resume", "embed",
                            "version", "subscribe", "unsubscribe"}
    handlers = Api(object()).handlers()
    assert set(handlers) == set(METHODS) - SESSION_METHODS
    assert "invalid_params" in ERROR_CODES


def test_search_request_contract() -> None:
    req = parse("search", {"query": "retry", "path": ["/a", "/b/../c"], "glob": "*.py", "type": ["py", "md"],
                           "exclude": "vendor/**", "since": 5, "min_score": 0.5, "per_file": 50, "limit": 200})
    assert req == SearchRequest(query="retry", limit=200, paths=("/a", "/c"), globs=("*.py",), types=("py", "md"),
                                excludes=("vendor/**",), since=5.0, per_file=50, min_score=0.5)
    assert parse("search", {"query": "x"}) == SearchRequest(query="x")
    assert to_params(req)["path"] == ["/a", "/c"]
    assert parse("search", to_params(req)) == req


@pytest.mark.parametrize("params", [
    {"query": "x", "limit": 0}, {"query": "x", "limit": 201}, {"query": "x", "limit": 10.0},
    {"query": "x", "limit": True}, {"query": "x", "per_file": 51}, {"query": "x", "per_file": 0},
    {"query": "x", "mode": "fuzzy"}, {"query": ""}, {"query": "   "}, {"query": "q" * 2001},
    {"query": 12}, {}, {"query": "x", "type": [1, 2]}, {"query": "x", "type": {"a": 1}},
    {"query": "x", "since": 1e308}, {"query": "x", "since": 10**30}, {"query": "x", "since": -1},
    {"query": "x", "since": float("nan")}, {"query": "x", "since": "yesterday"},
    {"query": "x", "min_score": 1.5}, {"query": "x", "min_score": -0.1}, {"query": "x", "limt": 3},
    {"query": "x", "path": "relative/dir"}, {"query": "x", "path": "rel", "cwd": "also/relative"},
    {"query": "x", "glob": ""}, {"query": "x", "type": ["py"] * 65}, {"query": "x\0"},
])
def test_bad_search_params_are_invalid_params_not_clamped(params: dict[str, Any]) -> None:
    assert code_of("search", params) == "invalid_params"


def test_relative_paths_resolve_against_cwd() -> None:
    assert parse("search", {"query": "x", "path": "src/../lib", "cwd": "/home/u/proj"}).paths == ("/home/u/proj/lib",)
    assert parse("similar", {"path": "a.py", "cwd": "/p", "line": 3}) == SimilarRequest(path="/p/a.py", line=3)
    assert parse("reindex", {"path": ".", "cwd": "/p"}).path == "/p"  # type: ignore[attr-defined]
    assert parse("search", {"query": "x", "path": "~/notes"}).paths[0].startswith("/")
    assert code_of("similar", {"path": "a.py"}) == "invalid_params"
    assert code_of("similar", {"path": "/a.py", "line": 0}) == "invalid_params"
    assert code_of("status", {"cwd": "/p"}) == "invalid_params"  # no path param: no cwd either


def test_other_methods_validate_too() -> None:
    assert code_of("embed", {"texts": []}) == "invalid_params"
    assert code_of("embed", {"texts": ["a"] * 257}) == "invalid_params"
    assert code_of("embed", {"texts": ["a"], "kind": "doc"}) == "invalid_params"
    assert parse("embed", {"texts": "one"}).texts == ("one",)  # type: ignore[attr-defined]
    assert code_of("subscribe", {"events": ["progress", "gossip"]}) == "invalid_params"
    assert code_of("version", {"verbose": True}) == "invalid_params"


def test_messages_say_what_is_wrong() -> None:
    with pytest.raises(ApiError) as info:
        parse("search", {"query": "x", "limit": 500})
    assert info.value.message == "search: limit must be in 1..200, not 500"
    with pytest.raises(ApiError) as info:
        parse("search", {"query": "x", "since": 10**30})
    assert "since must be in 0..253402300799" in info.value.message
    with pytest.raises(ApiError) as info:
        parse("search", {"query": "x", "path": "src"})
    assert "relative" in info.value.message and "cwd" in info.value.message


# ---------------------------------------------------------------- the schema


def test_schema_file_is_current() -> None:
    committed = (REPO / "docs" / "schema.json").read_text()
    assert committed == schema.render(), "docs/schema.json is stale: python -m semdexd.api.schema > docs/schema.json"


def test_schema_command_and_shape() -> None:
    out = subprocess.run([sys.executable, "-m", "semdexd.api.schema"], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert out == schema.render()
    s = schema.input_schema("search")
    assert s["required"] == ["query"] and s["additionalProperties"] is False
    assert s["properties"]["limit"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 10,
                                        "description": "at most this many hits"}
    assert {"path", "glob", "type", "exclude", "since", "min_score", "cwd", "per_file", "mode"} <= set(s["properties"])
    assert set(schema.all_schemas()) == set(METHODS)


# ---------------------------------------------------------------- the real handlers


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, model_info: Any) -> Any:
    from semdexd.app.service import Service

    tmp = tmp_path_factory.mktemp("api")
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "bread.md").write_text("Knead the dough.\nLet it rise overnight.\nBake until golden.\n")
    (folder / "net.py").write_text("def retry(n):\n    return 2 ** n\n")
    inst = Instance(tmp, [folder])
    service = Service(inst.config())
    service.start()
    wait_for(lambda: service.error or service.state() == "idle", timeout=180, what="index")
    assert service.error is None
    handlers = Api(service).handlers()
    handlers["folder"] = folder  # type: ignore[assignment]
    yield handlers
    service.stop()
    inst.cleanup()


def test_similar_unknown_file_or_line_is_not_found(api: dict[str, Any]) -> None:
    folder: Path = api["folder"]
    for params in ({"path": str(folder / "missing.md")}, {"path": str(folder / "bread.md"), "line": 99}):
        with pytest.raises(ApiError) as info:
            api["similar"](params)
        assert info.value.code == "not_found", params
    hits = api["similar"]({"path": "bread.md", "cwd": str(folder), "line": 2})["hits"]
    assert [h["path"] for h in hits] == [str(folder / "net.py")]


def test_search_through_the_handlers(api: dict[str, Any]) -> None:
    folder: Path = api["folder"]
    hits = api["search"]({"query": "dough", "path": ".", "cwd": str(folder), "mode": "lexical"})["hits"]
    assert [h["path"] for h in hits] == [str(folder / "bread.md")]
    with pytest.raises(ApiError) as info:
        api["search"]({"query": "dough", "limit": 1000})
    assert info.value.code == "invalid_params"
