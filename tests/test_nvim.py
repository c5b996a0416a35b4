"""A real headless Neovim (0.7+) talking msgpack-rpc to a real `semdexd run`.

Neovim keeps an rpc error's text only when it is a string or ``[type, message]``: these tests
check that `pcall(vim.rpcrequest, ...)` yields our code and message. Skipped when ``nvim`` is
not installed (.ci/run installs Debian's ``neovim``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_daemon import DaemonProcess

NVIM = shutil.which("nvim")
pytestmark = pytest.mark.skipif(NVIM is None, reason="nvim is not installed (apt-get install neovim)")


def run_lua(tmp_path: Path, socket: Path, body: str, timeout: float = 60.0) -> Any:
    """Run ``body`` in a headless nvim with ``chan`` connected to ``socket``; it sets ``out``,
    which is returned (JSON-decoded)."""
    result = tmp_path / "out.json"
    script = tmp_path / "script.lua"
    script.write_text(f"""
local chan = vim.fn.sockconnect("pipe", {json.dumps(str(socket))}, {{rpc = true}})
local out = {{}}
local ok, err = pcall(function()
{body}
end)
if not ok then out.script_error = tostring(err) end
vim.fn.writefile({{vim.fn.json_encode(out)}}, {json.dumps(str(result))})
vim.cmd("qa!")
""")
    assert NVIM is not None
    proc = subprocess.run([NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {script}"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert result.exists(), f"nvim wrote nothing: rc={proc.returncode} {proc.stderr}"
    return json.loads(result.read_text())


def test_neovim_sees_our_error_code_and_message(live: DaemonProcess, tmp_path: Path) -> None:
    out = run_lua(tmp_path, live.socket, """
  local ok, res = pcall(vim.rpcrequest, chan, "search", {query = "retry", limit = 1000})
  out.bad_ok, out.bad = ok, res
  ok, res = pcall(vim.rpcrequest, chan, "search", {query = "retry", path = "relative/dir"})
  out.rel_ok, out.rel = ok, res
  ok, res = pcall(vim.rpcrequest, chan, "no_such_method", {})
  out.unknown_ok, out.unknown = ok, res
  ok, res = pcall(vim.rpcrequest, chan, "version", {})
  out.version_ok, out.version = ok, res
""")
    assert "script_error" not in out, out
    assert out["bad_ok"] is False and "invalid_params: search: limit must be in 1..200, not 1000" in out["bad"]
    assert out["rel_ok"] is False and "invalid_params: search: path is relative" in out["rel"]
    assert out["unknown_ok"] is False and "unknown_method: unknown method 'no_such_method'" in out["unknown"]
    assert out["version_ok"] is True and out["version"]["protocol"] == 1, out


def test_neovim_receives_events_through_nvim_exec_lua(live: DaemonProcess, tmp_path: Path) -> None:
    from semdexd.protocol import call_json
    from tests.support import wait_for

    # this daemon has no model: its start ends in state "error", which the first event reports
    wait_for(lambda: call_json(live.socket, "status")["state"] == "error", 60, "the start to fail")
    out = run_lua(tmp_path, live.socket, """
  _G.semdex_events = {}
  local lua = "table.insert(_G.semdex_events, (...))"
  out.sub = vim.rpcrequest(chan, "subscribe", {events = {"state"}, lua = lua})
  out.got = vim.wait(10000, function() return #_G.semdex_events > 0 end, 20)
  out.events = _G.semdex_events
  out.status = vim.rpcrequest(chan, "status", {}).state
  out.unsub = vim.rpcrequest(chan, "unsubscribe", {})
""")
    assert "script_error" not in out, out
    assert out["sub"] == {"subscribed": True, "events": ["state"], "lua": True}
    assert out["got"] is True
    assert out["events"][0]["event"] == "state" and out["events"][0]["state"] == out["status"] == "error"
    assert out["unsub"] == {"subscribed": False}
