"""``semdex mcp``: a Model Context Protocol server over stdio, a thin client of the running semdexd.

Built on the official ``mcp`` SDK (low-level `Server`, so the tool input schemas are exactly the
daemon API's JSON Schemas). Tools: search, similar, status (see `semdex_client.mcp_tools`). Each call is
one request to the daemon on its own short connection; the blocking socket call runs in a worker
thread so the stdio loop keeps serving. A daemon that is not
running, or that refuses a request, gives a tool error result (``isError``) with a message saying
what to do; the MCP server itself keeps running. Logs go to stderr only (stdout is the protocol).

The SDK is imported only here, and this module only by ``semdex mcp``: ``semdex`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from semdex_client.api import Client
from semdex_client.mcp_tools import TOOLS, ToolOutput, run_tool, tool_schema

SERVER_NAME = "semdex"
INSTRUCTIONS = ("semdex searches the user's local files by meaning. Use `search` for questions about "
                "their notes, documents or code; `similar` to find related passages to a file:line; "
                "`status` to see whether indexing is complete.")


class DaemonLink:
    """Calls to the daemon, one short connection per tool call (a Unix-socket connect costs well
    under a millisecond), so a daemon restarted or an idle connection closed by the daemon
    between two calls never surfaces as an error."""

    def __init__(self, socket_path: Path, timeout: float, cwd: str) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.cwd = cwd

    def call_tool(self, name: str, arguments: dict[str, Any] | None) -> ToolOutput:
        """Run tool ``name`` against the daemon (never raises for daemon-side trouble)."""
        with Client(self.socket_path, timeout=self.timeout) as client:
            return run_tool(client, name, arguments, cwd=self.cwd)


def _tools() -> list[types.Tool]:
    return [types.Tool(name=t.name, description=t.description, input_schema=tool_schema(t.name)) for t in TOOLS]


def _result(out: ToolOutput) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=out.text)],
                                structured_content=out.structured, is_error=out.is_error)


def build_server(link: DaemonLink) -> Server[Any]:
    """The MCP server answering tools/list and tools/call through ``link``."""
    from semdexd import __version__

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=_tools())

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        out = await anyio.to_thread.run_sync(link.call_tool, params.name, params.arguments)
        return _result(out)

    return Server(SERVER_NAME, version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def _serve(link: DaemonLink) -> None:
    server = build_server(link)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def serve(socket_path: Path, timeout: float) -> int:
    """Serve MCP on stdin/stdout until the client closes them; returns the exit code (0)."""
    anyio.run(_serve, DaemonLink(socket_path, timeout, os.getcwd()))
    return 0
