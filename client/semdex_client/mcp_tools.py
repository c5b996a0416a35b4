"""The MCP tools of ``semdex mcp``, without the MCP SDK: their schemas, and how a call becomes a
daemon request and its reply readable text.

Contract: `TOOLS` names the tools (search, similar, status), each mapped to the daemon method it
calls; its input schema is the typed API's JSON Schema of that method (`semdexd.api.schema`). `run_tool(client, name, arguments)` returns a `ToolOutput` (text for the model,
structured content, error flag) and never raises for a daemon that is down or refuses the request:
the error is a readable message with ``is_error=True``. Imports only the standard library and
``semdex_client.api``, so it is unit-testable and cheap to import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semdex_client import render
from semdex_client.api import Client, ClientError, DaemonNotRunning, RemoteError
from semdexd.api.schema import input_schema  # the typed API's JSON Schema (stdlib only)

NOT_RUNNING = ("semdexd is not running; start it with `semdexd start [FOLDER ...]` "
               "(or `systemctl --user start semdexd`), then call this tool again.")


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool: its name, the daemon method behind it, and what to tell the model."""

    name: str
    method: str
    description: str


@dataclass
class ToolOutput:
    """What a tool call returns: ``text`` for the model, ``structured`` JSON, ``is_error``."""

    text: str
    structured: dict[str, Any] | None = None
    is_error: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("search", "search",
             "Search the user's indexed local files by meaning (semantic), by words (lexical) or both "
             "(hybrid, the default). Returns path:line ranges with a snippet and a score, best first. "
             "Filter with path (a folder or file), glob, type (file extensions) and since (Unix time)."),
    ToolSpec("similar", "similar",
             "Find chunks of other indexed files similar to a file, or to the chunk covering one "
             "line of it. Returns path:line ranges with a snippet and a score, best first."),
    ToolSpec("status", "status",
             "The semdex daemon's state: indexing progress (files indexed/queued, chunks, ETA), "
             "watched folders, and files that failed or were skipped."),
)
BY_NAME = {t.name: t for t in TOOLS}
CWD = "cwd"


def tool_schema(name: str) -> dict[str, Any]:
    """The input JSON Schema of tool ``name`` (that of its daemon method)."""
    return dict(input_schema(BY_NAME[name].method))


def with_cwd(method: str, arguments: Mapping[str, Any], cwd: str) -> dict[str, Any]:
    """``arguments`` plus ``cwd`` (unless given) for a method with path params: the daemon then
    resolves relative paths against it (an agent usually means the project it runs in)."""
    params = dict(arguments)
    if CWD in input_schema(method).get("properties", {}) and CWD not in params:
        params[CWD] = cwd
    return params


def run_tool(client: Client, name: str, arguments: Mapping[str, Any] | None, cwd: str | None = None) -> ToolOutput:
    """Call tool ``name``; errors (unknown tool, daemon down, refused request) become outputs."""
    spec = BY_NAME.get(name)
    if spec is None:
        return ToolOutput(f"unknown tool {name!r}; the tools are: {', '.join(BY_NAME)}", is_error=True)
    params = with_cwd(spec.method, arguments or {}, cwd or os.getcwd())
    try:
        result = client.call(spec.method, **params)
    except DaemonNotRunning:
        return ToolOutput(f"{NOT_RUNNING} (socket: {client.socket_path})", is_error=True)
    except RemoteError as exc:
        return ToolOutput(f"semdexd refused the request ({exc.code}): {exc.message}", is_error=True)
    except ClientError as exc:
        return ToolOutput(f"talking to semdexd failed: {exc}", is_error=True)
    if spec.method == "status":
        return ToolOutput(status_text(result), structured=result)
    return ToolOutput(answer_text(result), structured=result)


def answer_text(result: Mapping[str, Any]) -> str:
    """The hits; when none reach the cutoff, "no good match" and the weak ones, marked; plus the
    daemon's notices (filter matched no file, indexing still running)."""
    lines = []
    if result.get("indexing") or result.get("coverage"):
        lines.append(f"({render.indexing_notice(result.get('indexing'), result.get('coverage'))})")
    if result.get("notice"):
        lines.append(str(result["notice"]))
    hits = list(result.get("hits") or [])
    weak = list(result.get("weak") or [])
    if hits:
        lines.append(hits_text(hits))
    elif weak:
        cutoff = float(result.get("min_score") or 0.0)
        lines.append(f"no good match (every hit scores below {cutoff:.2f}); the best weak hits:")
        lines.append(hits_text(weak))
    else:
        lines.append("no results")
    return "\n".join(lines)


def hits_text(hits: list[dict[str, Any]]) -> str:
    """``path:start-end  score S`` then the snippet indented, per hit; "no results" if none."""
    if not hits:
        return "no results"
    blocks = []
    for hit in hits:
        head = f"{hit.get('path')}:{hit.get('start_line')}-{hit.get('end_line')}  score {float(hit.get('score') or 0.0):.3f}"
        snippet = "\n".join("    " + line for line in str(hit.get("snippet", "")).rstrip().splitlines())
        blocks.append(head + ("\n" + snippet if snippet else ""))
    return "\n".join(blocks)


def status_text(st: dict[str, Any]) -> str:
    """A few lines: state, progress, folders, failures."""
    lines = [f"state: {st.get('state')}" + (f" ({st['error']})" if st.get("error") else "")]
    lines.append(f"files: {st.get('files_indexed', 0)} indexed of {st.get('files_total', 0)}, "
                 f"{st.get('files_queued', 0)} queued, {st.get('files_failed', 0)} failed, "
                 f"{st.get('files_skipped', 0)} skipped; chunks: {st.get('chunks', 0)}")
    if st.get("eta_s") is not None:
        lines.append(f"eta: {float(st['eta_s']):.0f} s")
    if st.get("folders"):
        lines.append("folders: " + ", ".join(str(f) for f in st["folders"]))
    for failure in (st.get("failures") or [])[:10]:
        lines.append(f"  {failure.get('status')}: {failure.get('path')}: {failure.get('reason')}")
    return "\n".join(lines)
