"""Neovim against a real daemon: the plugin (client/nvim) in a real headless `nvim` (real model),
and plain msgpack-rpc (`vim.rpcrequest`) seeing our error code and message.

Each test runs one `nvim --headless -u NONE` with the plugin on its runtimepath and a Lua script
that drives it, waits with bounded `vim.wait`s, and writes what it saw as JSON to a file read here.
Skipped, with the reason, when `nvim` (>= 0.7) is not installed (.ci/run installs Debian's neovim).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import test_e2e
from tests.support import SOURCE_PATH, wait_for
from tests.test_daemon import DaemonProcess
from tests.test_e2e import CORPUS, status

daemon = test_e2e.daemon  # the live-daemon fixture: a real `semdexd run` on a tiny corpus, real model

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "client" / "nvim"
NVIM = shutil.which("nvim")


def _nvim_version() -> tuple[int, int]:
    if NVIM is None:
        return (0, 0)
    out = subprocess.run([NVIM, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    m = re.search(r"NVIM v(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


pytestmark = pytest.mark.skipif(_nvim_version() < (0, 7),
                                reason="needs Neovim >= 0.7 on PATH (apt-get install neovim; .ci/run does it)")

PRELUDE = r"""
local OUT = os.getenv("SEMDEX_TEST_OUT")
notes = {}
local real_notify = vim.notify
vim.notify = function(msg, level, o) table.insert(notes, { msg = msg, level = level }) end
function finish(tbl)
  local f = assert(io.open(OUT, "w"))
  f:write(vim.json.encode(tbl))
  f:close()
end
function qf()
  local out = {}
  for _, it in ipairs(vim.fn.getqflist()) do
    table.insert(out, { path = vim.api.nvim_buf_get_name(it.bufnr), lnum = it.lnum, col = it.col, text = it.text })
  end
  return out
end
semdex = require("semdex")
"""


def run_nvim(tmp_path: Path, env: dict[str, str], lua: str, timeout: float = 180,
             commands: tuple[str, ...] = ("runtime! plugin/semdex.lua",)) -> dict[str, Any]:
    """Run ``lua`` (after PRELUDE) in a headless nvim; return what it passed to ``finish``.
    ``commands`` run first, each as its own ``-c``: by default sourcing plugin/semdex.lua, as a
    normal startup does (``-u NONE`` skips plugin/ scripts)."""
    script, out = tmp_path / "drive.lua", tmp_path / "out.json"
    script.write_text(PRELUDE + lua)
    out.unlink(missing_ok=True)
    extra = [arg for command in commands for arg in ("-c", command)]
    proc = subprocess.run(
        [str(NVIM), "--headless", "-u", "NONE", "-i", "NONE", "-n", "--cmd", f"set rtp^={PLUGIN}",
         *extra, "-c", f"luafile {script}", "-c", "qa!"],
        env={**env, "SEMDEX_TEST_OUT": str(out)}, cwd=str(tmp_path), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    assert out.exists(), f"nvim wrote no result (rc {proc.returncode}): {proc.stdout}\n{proc.stderr}"
    return json.loads(out.read_text())


def idle(env: dict[str, str]) -> None:
    wait_for(lambda: status(env).get("state") == "idle" and status(env).get("files_indexed", 0) >= len(CORPUS),
             timeout=180, what="index idle")


def cli_socket(env: dict[str, str]) -> str:
    """The socket path client/semdex_client/paths.py resolves in a process with exactly ``env``."""
    code = "from semdex_client.paths import resolve_socket_path; print(resolve_socket_path())"
    return subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": SOURCE_PATH}, capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def test_socket_path_resolved_like_the_cli(tmp_path):
    """The Lua rule agrees with client/semdex_client/paths.py for each source of the path."""
    cfg_home = tmp_path / "cfg"
    (cfg_home / "semdex").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    base = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(cfg_home), "PATH": os.environ["PATH"]}
    cases = [
        {**base, "XDG_RUNTIME_DIR": str(tmp_path / "run")},
        {**base, "TMPDIR": str(tmp_path / "tmp")},
        {**base, "XDG_RUNTIME_DIR": str(tmp_path / "run"), "SEMDEX_SOCKET": str(tmp_path / "explicit.sock")},
    ]
    for env in cases:
        got = run_nvim(tmp_path, env, 'finish({ path = (semdex.socket()) })\n')
        assert got["path"] == cli_socket(env), env
    (cfg_home / "semdex" / "config.toml").write_text('[index]\nfolders = []\n\n[server]\nsocket = "~/my.sock"\n')
    env = {**base, "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    got = run_nvim(tmp_path, env, 'local p, src = semdex.socket()\nfinish({ path = p, src = src })\n')
    assert got["path"] == cli_socket(env) == str(tmp_path / "my.sock")
    assert got["src"].startswith("config ")
    # a file the daemon would refuse elsewhere still gives its [server] socket (as client/semdex_client/paths.py)
    (cfg_home / "semdex" / "config.toml").write_text(
        '[index]\nfolders = [unclosed\n\n[server]  # here\nsocket = "/tmp/other.sock"  # note\n')
    got = run_nvim(tmp_path, env, 'finish({ path = (semdex.socket()) })\n')
    assert got["path"] == cli_socket(env) == "/tmp/other.sock"


def test_search_and_similar_fill_quickfix(daemon, tmp_path):
    _, env, folder, _ = daemon
    idle(env)
    soup = folder / "recipes" / "soup.md"
    got = run_nvim(tmp_path, env, f"""
vim.cmd("Semdex how do I bake bread")
local ok1 = vim.wait(60000, function() return #vim.fn.getqflist() > 0 end, 20)
local search = qf()
local title = vim.fn.getqflist({{ title = 1 }}).title
vim.fn.setqflist({{}}, "r")
vim.cmd("edit {soup}")
vim.api.nvim_win_set_cursor(0, {{ 3, 0 }})
vim.cmd("SemdexSimilar")
local ok2 = vim.wait(60000, function() return #vim.fn.getqflist() > 0 end, 20)
finish({{ ok1 = ok1, ok2 = ok2, search = search, title = title, similar = qf(), notes = notes }})
""")
    assert got["ok1"] and got["ok2"], got
    bread = str(folder / "recipes" / "bread.md")
    assert got["search"][0]["path"] == bread
    assert got["search"][0]["lnum"] >= 1 and got["search"][0]["text"].startswith("[")
    assert got["title"] == "semdex: how do I bake bread"
    paths = [h["path"] for h in got["similar"]]
    assert paths and str(soup) not in paths
    assert not got["notes"], got["notes"]


def test_setup_alone_gives_the_command(daemon, tmp_path):
    """As a new user tries it: `nvim -u NONE` (plugin/ scripts are not sourced) with the plugin on
    the runtimepath, `setup({})` with no options, then `:Semdex <question>` typed on the command
    line. setup() must define :Semdex; the hits reach the quickfix list."""
    _, env, folder, _ = daemon
    idle(env)
    bread = str(folder / "recipes" / "bread.md")
    question = "how do I keep my bread starter alive"
    got = run_nvim(tmp_path, env, f"""
local found = vim.wait(60000, function()
  for _, it in ipairs(vim.fn.getqflist()) do
    if vim.api.nvim_buf_get_name(it.bufnr) == {json.dumps(bread)} then return true end
  end
  return false
end, 20)
finish({{ found = found, qf = qf(), title = vim.fn.getqflist({{ title = 1 }}).title, errmsg = vim.v.errmsg,
         commands = vim.fn.exists(":Semdex") }})
""", commands=("lua require('semdex').setup({})", f"Semdex {question}"))
    assert got["found"], got
    assert got["qf"][0]["path"] == bread, got
    assert got["title"] == f"semdex: {question}"
    assert got["errmsg"] == "", got


def test_errors_are_readable(daemon, tmp_path):
    env = daemon[1]
    idle(env)
    got = run_nvim(tmp_path, env, """
local done = false
semdex.search("bread", { mode = "fuzzy" }, function() done = true end)
vim.wait(30000, function() return done end, 20)
local bad = notes[1]
notes = {}
done = false
vim.fn.writefile({ "not in the index" }, vim.fn.getcwd() .. "/stray.txt")
semdex.similar(vim.fn.getcwd() .. "/stray.txt", 1, function() done = true end)
vim.wait(30000, function() return done end, 20)
local missing = notes[1]
notes = {}
semdex.setup({ socket = vim.fn.getcwd() .. "/nobody.sock" })
done = false
semdex.search("bread", {}, function() done = true end)
vim.wait(30000, function() return done end, 20)
finish({ bad = bad, missing = missing, down = notes[1] })
""")
    assert got["bad"]["level"] == 4  # vim.log.levels.ERROR
    assert "refused the request (invalid_params)" in got["bad"]["msg"] and "mode" in got["bad"]["msg"], got
    assert "unknown error" not in got["bad"]["msg"]
    assert "refused the request (not_found)" in got["missing"]["msg"] and "stray.txt" in got["missing"]["msg"], got
    assert "semdexd is not running" in got["down"]["msg"] and "semdexd start" in got["down"]["msg"]
    assert "nobody.sock" in got["down"]["msg"]


def test_checkhealth(daemon, tmp_path):
    env = daemon[1]
    idle(env)
    lua = 'vim.cmd("checkhealth semdex")\nfinish({ lines = vim.api.nvim_buf_get_lines(0, 0, -1, false) })\n'
    up = "\n".join(run_nvim(tmp_path, env, lua)["lines"])
    assert "semdexd 0.1.0 (protocol 1" in up and "state idle" in up and "progress subscription works" in up, up
    assert "ERROR" not in up, up
    down = "\n".join(run_nvim(tmp_path, {**env, "SEMDEX_SOCKET": str(tmp_path / "none.sock")}, lua)["lines"])
    assert "semdexd is not running: no socket at " + str(tmp_path / "none.sock") in down, down
    assert "from SEMDEX_SOCKET" in down


def test_statusline_follows_pushed_progress(daemon, tmp_path):
    _, env, folder, _ = daemon
    idle(env)
    new = folder / "garden"
    got = run_nvim(tmp_path, env, f"""
local seen = {{}}
vim.api.nvim_create_autocmd("User", {{ pattern = "SemdexProgress", callback = function()
  table.insert(seen, semdex.statusline())
end }})
semdex.setup({{ show_idle = true }})
semdex.statusline()
local progress = require("semdex.progress")
local ready = vim.wait(30000, function() return progress.current ~= nil and progress.mode ~= nil end, 20)
if progress.mode ~= "subscribed" then
  finish({{ ready = ready, mode = progress.mode }})
  return
end
local before = semdex.statusline()
local first_events, first_total = progress.events, progress.current.files_total
-- paused, the new files wait in the queue: the statusline must show it (pushed, not polled)
local paused = false
semdex.request("pause", nil, function(err) paused = not err end)
vim.wait(10000, function() return paused end, 20)
vim.fn.mkdir("{new}", "p")
for i = 1, 3 do
  vim.fn.writefile({{ "Plant tomatoes " .. i .. " in spring, water them at dawn." }}, "{new}/bed" .. i .. ".txt")
end
local moved = vim.wait(60000, function()
  for _, s in ipairs(seen) do if s ~= "semdex idle" then return true end end
  return false
end, 20)
local resumed = false
semdex.request("resume", nil, function(err) resumed = not err end)
local back = vim.wait(90000, function()
  return resumed and semdex.statusline() == "semdex idle" and progress.current.files_total == first_total + 3
end, 20)
finish({{ ready = ready, mode = progress.mode, before = before, seen = seen, moved = moved, back = back,
         events = progress.events - first_events }})
""")
    assert got["ready"], got
    assert got["mode"] == "subscribed", got  # not the status-polling fallback
    assert got["before"] == "semdex idle"
    assert got["moved"], got["seen"]
    assert got["back"] and got["events"] > 0, got


# ---------------------------------------------------------------- msgpack-rpc, no plugin (helper api)


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
    # the `live` daemon has no model: it has settled in state "error", which the first event reports
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
