"""Round trip of a search through each face of a running semdexd: Neovim plugin, MCP, direct.

    python -m semdex_client.bench_faces [-n 20] [--query "..."] [--socket PATH]

Against the daemon the `semdex` CLI would use (or ``--socket``). Prints, per face, the median
and p90 of ``n`` sequential searches (same query, same limit) and each median's ratio to the
direct `semdex_client.api.Client` call measured in the same run:

* ``direct``: `Client.call("search")` (msgpack-rpc, one reused connection): the daemon's own time.
* ``nvim plugin``: inside a headless ``nvim``, ``require("semdex").request("search")`` until its
  callback runs (JSON lines on a libuv pipe), timed with ``vim.loop.hrtime``; ``nvim :Semdex``
  adds filling the quickfix list; ``nvim rpcrequest``: plain ``vim.rpcrequest`` (msgpack-rpc).
* ``mcp``: ``tools/call search`` from the MCP SDK's stdio client to ``semdex mcp`` until the
  result is back (text + structured content).

A first untimed call warms each path (connection, model). Each call sends a distinct query (the
base query plus a counter), so the daemon embeds every one; ``--same-query`` repeats one query.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "client" / "nvim"

NVIM_LUA = r"""
local cfg = vim.json.decode(os.getenv("SEMDEX_BENCH"))
local semdex = require("semdex")
semdex.setup({ socket = cfg.socket, limit = cfg.limit, picker = "quickfix" })
vim.notify = function() end
local function timed(start_one)
  local out = {}
  for i = 0, cfg.n do
    local done = false
    local t0 = vim.loop.hrtime()
    start_one(function() done = true end)
    if not vim.wait(60000, function() return done end, 1) then error("no reply within 60 s") end
    if i > 0 then table.insert(out, (vim.loop.hrtime() - t0) / 1e6) end
  end
  return out
end
local k = 0
local function q(tag) k = k + 1; return cfg.distinct and (cfg.query .. " " .. tag .. k) or cfg.query end
local res = {}
res.request = timed(function(cb)
  semdex.request("search", { query = q("r"), limit = cfg.limit }, function(err) assert(not err, vim.inspect(err)); cb() end)
end)
res.command = timed(function(cb) semdex.search(q("c"), { limit = cfg.limit }, function(err) assert(not err); cb() end) end)
local chan = vim.fn.sockconnect("pipe", cfg.socket, { rpc = true })
res.rpcrequest = {}
for i = 0, cfg.n do
  local t0 = vim.loop.hrtime()
  vim.rpcrequest(chan, "search", { query = q("p"), limit = cfg.limit })
  if i > 0 then table.insert(res.rpcrequest, (vim.loop.hrtime() - t0) / 1e6) end
end
local f = assert(io.open(cfg.out, "w"))
f:write(vim.json.encode(res))
f:close()
"""


def _queries(query: str, tag: str, n: int, distinct: bool) -> list[str]:
    """``n + 1`` queries: the same one, or (distinct) one per call so no cache answers it."""
    return [f"{query} {tag}{i + 1}" if distinct else query for i in range(n + 1)]


def _direct(socket: Path, query: str, limit: int, n: int, distinct: bool) -> list[float]:
    from semdex_client.api import Client

    out = []
    with Client(socket) as client:
        for i, text in enumerate(_queries(query, "d", n, distinct)):
            t0 = time.perf_counter()
            client.call("search", query=text, limit=limit)
            if i:
                out.append((time.perf_counter() - t0) * 1000)
    return out


def _nvim(socket: Path, query: str, limit: int, n: int, distinct: bool) -> dict[str, list[float]]:
    nvim = shutil.which("nvim")
    if nvim is None:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "bench.lua", Path(tmp) / "out.json"
        script.write_text(NVIM_LUA)
        cfg = {"socket": str(socket), "query": query, "limit": limit, "n": n, "out": str(out), "distinct": distinct}
        subprocess.run([nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n", "--cmd", f"set rtp^={PLUGIN}",
                        "-c", "runtime! plugin/semdex.lua", "-c", f"luafile {script}", "-c", "qa!"],
                       env={**os.environ, "SEMDEX_BENCH": json.dumps(cfg)}, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=600, check=False)
        if not out.exists():
            raise SystemExit("bench: the nvim run wrote no result")
        data: dict[str, list[float]] = json.loads(out.read_text())
    return {"nvim plugin (request)": data["request"], "nvim :Semdex (+quickfix)": data["command"],
            "nvim rpcrequest": data["rpcrequest"]}


def _mcp(socket: Path, query: str, limit: int, n: int, distinct: bool) -> list[float]:
    import anyio
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "semdex_client.cli", "--socket", str(socket), "mcp"],
                                   env={**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO), str(REPO / "client")))})
    out: list[float] = []

    async def main() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for i, text in enumerate(_queries(query, "m", n, distinct)):
                t0 = time.perf_counter()
                res = await session.call_tool("search", {"query": text, "limit": limit})
                if res.is_error:
                    raise SystemExit(f"bench: mcp search failed: {res.content}")
                if i:
                    out.append((time.perf_counter() - t0) * 1000)

    anyio.run(main)
    return out


def _line(name: str, ms: list[float], base: float) -> str:
    med = statistics.median(ms)
    p90 = sorted(ms)[max(0, round(0.9 * len(ms)) - 1)]
    return f"{name:28s} median {med:7.2f} ms   p90 {p90:7.2f} ms   x{med / base:5.2f} of direct   (n={len(ms)})"


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print one line per face."""
    parser = argparse.ArgumentParser(prog="python -m semdex_client.bench_faces", description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20, help="timed searches per face (default 20)")
    parser.add_argument("--query", default="what happens if the process is killed while writing")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--socket", help="daemon socket (default: as the semdex CLI finds it)")
    parser.add_argument("--same-query", action="store_true",
                        help="repeat the one query (cache hits) instead of a distinct query per call")
    args = parser.parse_args(argv)
    from semdex_client.paths import resolve_socket_path

    socket = resolve_socket_path(args.socket)
    distinct = not args.same_query
    results = {"direct (semdex_client.api)": _direct(socket, args.query, args.limit, args.n, distinct)}
    results.update(_nvim(socket, args.query, args.limit, args.n, distinct))
    results["mcp tools/call"] = _mcp(socket, args.query, args.limit, args.n, distinct)
    base = statistics.median(results["direct (semdex_client.api)"])
    print(f"search round trip, query {args.query!r}{' + a distinct suffix per call' if distinct else ''}, "
          f"limit {args.limit}, socket {socket}")
    for name, ms in results.items():
        print(_line(name, ms, base))
    if not shutil.which("nvim"):
        print("(nvim not on PATH: Neovim figures skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
