"""`semdex mcp` driven by the MCP SDK's own stdio client against a real daemon (real model)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from semdexd.api.schema import input_schema
from tests import test_e2e
from tests.support import SOURCE_PATH, wait_for
from tests.test_daemon import DaemonProcess
from tests.test_e2e import CORPUS, status

daemon = test_e2e.daemon  # the live-daemon fixture: a real `semdexd run` on a tiny corpus, real model

mcp = pytest.importorskip("mcp", reason="the `mcp` SDK is not installed (pip install mcp)")
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parent.parent


def run_session(env: dict[str, str], body: Callable[[ClientSession], Awaitable[Any]], cwd: Path | None = None) -> Any:
    """Start `semdex mcp` as a subprocess, initialise a session, run ``body`` on it."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "semdex_client.cli", "mcp"],
                                   env={**env, "PYTHONPATH": SOURCE_PATH}, cwd=str(cwd or REPO))

    async def main() -> Any:
        with anyio.fail_after(120):
            async with stdio_client(params, errlog=sys.stderr) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)

    return anyio.run(main)


def idle(env: dict[str, str]) -> None:
    wait_for(lambda: status(env).get("state") == "idle" and status(env).get("files_indexed") == len(CORPUS),
             timeout=180, what="initial index")


def test_tools_listed_with_schemas(daemon):
    env = daemon[1]

    async def body(s: ClientSession) -> Any:
        return (await s.list_tools()).tools

    tools = {t.name: t for t in run_session(env, body)}
    assert set(tools) == {"search", "similar", "status"}
    for name, tool in tools.items():  # exactly the typed API's schema: the tools cannot drift
        assert tool.input_schema == input_schema(name)
    search = tools["search"].input_schema
    assert search["type"] == "object" and search["required"] == ["query"]
    assert {"query", "limit", "mode", "path", "glob", "type", "since"} <= set(search["properties"])
    assert set(search["properties"]["mode"]["enum"]) == {"hybrid", "semantic", "lexical"}
    assert tools["similar"].input_schema["required"] == ["path"]
    assert all(t.description for t in tools.values())


def test_search_similar_status_and_bad_input(daemon):
    proc, env, folder, _ = daemon
    idle(env)

    async def body(s: ClientSession) -> Any:
        return (await s.call_tool("search", {"query": "how do I bake bread", "limit": 3}),
                await s.call_tool("search", {"query": "retry", "mode": "lexical", "type": ["py"]}),
                await s.call_tool("similar", {"path": "notes/recipes/soup.md", "line": 3}),
                await s.call_tool("status", {}),
                await s.call_tool("search", {"query": "x", "mode": "fuzzy"}),
                await s.call_tool("search", {"query": "still serving after the error"}))

    search, lexical, similar, st, bad, after = run_session(env, body, cwd=folder.parent)
    bread = str(folder / "recipes" / "bread.md")
    assert not search.is_error
    assert search.structured_content["hits"][0]["path"] == bread
    assert search.content[0].text.startswith(bread + ":")
    assert "score" in search.content[0].text.splitlines()[0]
    assert [h["path"] for h in lexical.structured_content["hits"]] == [str(folder / "code" / "netutil.py")]
    # a relative path is resolved against the MCP server's working directory
    assert not similar.is_error, similar.content[0].text
    assert str(folder / "recipes" / "soup.md") not in [h["path"] for h in similar.structured_content["hits"]]
    assert st.structured_content["state"] == "idle" and "state: idle" in st.content[0].text
    assert bad.is_error and "mode" in bad.content[0].text and "Traceback" not in bad.content[0].text
    # a query about nothing in the notes: no good match, the best weak hits shown as such
    assert not after.is_error and not after.structured_content["hits"] and after.structured_content["weak"]
    assert after.content[0].text.startswith("no good match")
    assert proc.poll() is None


def test_daemon_not_running_is_a_clear_tool_error(tmp_path):
    env = {**os.environ, "SEMDEX_SOCKET": str(tmp_path / "nobody.sock")}

    async def body(s: ClientSession) -> Any:
        return (await s.call_tool("search", {"query": "anything"}),
                await s.call_tool("status", {}),
                await s.call_tool("nope", {}))

    search, st, unknown = run_session(env, body)
    for res in (search, st):
        assert res.is_error
        text = res.content[0].text
        assert "semdexd is not running" in text and "semdexd start" in text and "Traceback" not in text
    assert unknown.is_error and "unknown tool" in unknown.content[0].text


def test_daemon_stopped_then_restarted_mid_session(tmp_path):
    """One MCP session outlives its daemon: a clear error while it is down, answers once it is back."""
    d = DaemonProcess(tmp_path)  # no model: starts fast, reports state "error" (enough for status)
    d.run()
    d.wait_ready()

    def stop() -> None:
        d.signal(signal.SIGTERM)
        d.wait_exit(60)

    def start() -> None:
        d.run()
        d.wait_ready()

    async def body(s: ClientSession) -> Any:
        before = await s.call_tool("status", {})
        await anyio.to_thread.run_sync(stop)
        down = await s.call_tool("search", {"query": "anything"})
        await anyio.to_thread.run_sync(start)
        return before, down, await s.call_tool("status", {})

    try:
        before, down, after = run_session(d.env, body)
    finally:
        d.cleanup()
    assert not before.is_error and before.structured_content["state"] == "error"
    assert "state: error" in before.content[0].text
    assert down.is_error and "semdexd is not running" in down.content[0].text, down.content[0].text
    assert not after.is_error and after.structured_content["state"] in ("starting", "error")
