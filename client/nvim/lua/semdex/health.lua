-- :checkhealth semdex: Neovim version, which socket and why, daemon running, protocol version,
-- daemon state (and why it is in error), progress subscription.
local M = {}

M.PROTOCOL = 1 -- the socket protocol this plugin speaks (docs/protocol.md)

-- vim.health (0.8+: report_*, 0.10+: ok/warn/...) or the 0.7 health#report_* functions.
local function reporter(new, old)
  local h = vim.health
  if h and h[new] then
    return h[new]
  elseif h and h["report_" .. new] then
    return h["report_" .. new]
  end
  return function(...)
    vim.fn["health#report_" .. old](...)
  end
end

local start = reporter("start", "start")
local ok = reporter("ok", "ok")
local warn = reporter("warn", "warn")
local err = reporter("error", "error")
local info = reporter("info", "info")

function M.check()
  local semdex = require("semdex")
  local rpc = require("semdex.rpc")
  start("semdex")
  if vim.fn.has("nvim-0.7") == 1 then
    ok("Neovim " .. tostring(vim.version().major) .. "." .. tostring(vim.version().minor))
  else
    err("Neovim >= 0.7 is required")
    return
  end

  local path, source = semdex.socket()
  info("socket: " .. path .. " (from " .. source .. ")")
  if vim.loop.fs_stat(path) == nil then
    err("semdexd is not running: no socket at " .. path, {
      "start it: semdexd start [FOLDER ...]   (or: systemctl --user start semdexd)",
      "a daemon with another socket? set it: require('semdex').setup({ socket = '...' }) or $SEMDEX_SOCKET",
    })
    return
  end

  local e, version = rpc.request_sync(path, "version", nil, 5000)
  if e then
    err(rpc.format_error(e), { "is semdexd running? semdexd status" })
    return
  end
  local protocol = tonumber(version.protocol)
  if protocol ~= M.PROTOCOL then
    err(string.format("protocol mismatch: semdexd %s speaks protocol %s, this plugin speaks %d",
      tostring(version.version), tostring(version.protocol), M.PROTOCOL),
      { "update the plugin and the daemon from the same semdex release" })
  else
    ok(string.format("semdexd %s (protocol %d, model %s)", tostring(version.version), protocol, tostring(version.model)))
  end

  local se, st = rpc.request_sync(path, "status", nil, 5000)
  if se then
    err("status failed: " .. rpc.format_error(se))
    return
  end
  if st.state == "error" then
    err("semdexd is in error: " .. tostring(st.error), { "see its log: semdexd status, or the log file in $XDG_STATE_HOME/semdex" })
  else
    ok(string.format("state %s: %s files indexed, %s queued, %s chunks", tostring(st.state),
      tostring(st.files_indexed), tostring(st.files_queued), tostring(st.chunks)))
  end

  local sub_err = rpc.request_sync(path, "subscribe", { events = { "progress", "state" } }, 5000)
  if sub_err and sub_err.code == "unknown_method" then
    warn("this semdexd has no `subscribe`: the statusline falls back to a status call every 2 s")
  elseif sub_err then
    warn("subscribe failed: " .. rpc.format_error(sub_err))
  else
    ok("progress subscription works (statusline: require('semdex').statusline())")
  end
end

return M
