-- Where semdexd's socket is: the same rule as the `semdex` CLI (client/semdex_client/paths.py), reimplemented
-- here so the plugin needs no Python and no subprocess on start.
--
-- Order: setup{ socket = PATH }, then $SEMDEX_SOCKET, then `[server] socket` of the config file
-- ($XDG_CONFIG_HOME/semdex/config.toml, or setup{ config = FILE }), else
-- $XDG_RUNTIME_DIR/semdex/semdexd.sock, else $TMPDIR/semdex-$UID/semdex/semdexd.sock (/tmp when
-- TMPDIR is unset). resolve() returns the path and a word saying which rule gave it.
local M = {}

local function env(name)
  local v = vim.loop.os_getenv(name)
  if v == nil or v == "" then
    return nil
  end
  return v
end

local function is_abs(p)
  return p ~= nil and p:sub(1, 1) == "/"
end

local function expand(p)
  if p:sub(1, 1) == "~" then
    return (env("HOME") or "") .. p:sub(2)
  end
  return p
end

--- The config file the daemon reads by default.
function M.config_file()
  local xdg = env("XDG_CONFIG_HOME")
  local base = is_abs(xdg) and xdg or ((env("HOME") or "") .. "/.config")
  return base .. "/semdex/config.toml"
end

--- `socket = "..."` under `[server]` in a TOML file, or nil. Reads basic and literal strings on
--- one line (the form config.example.toml shows); anything fancier: set `socket` in setup().
function M.socket_from_config(file)
  local fd = io.open(file, "r")
  if not fd then
    return nil
  end
  local section, found = nil, nil
  for line in fd:lines() do
    local stripped = line:gsub("^%s+", "")
    local name = stripped:match("^%[%s*([%w_%.%-]+)%s*%]")
    if name then
      section = name
    elseif section == "server" then
      local value = stripped:match('^socket%s*=%s*"(.-)"') or stripped:match("^socket%s*=%s*'(.-)'")
      if value then
        found = value
      end
    end
  end
  fd:close()
  if found == nil or found == "" then
    return nil
  end
  return expand(found)
end

local function runtime_base()
  local xdg = env("XDG_RUNTIME_DIR")
  if is_abs(xdg) then
    return xdg
  end
  local tmp = env("TMPDIR") or "/tmp"
  return tmp:gsub("/+$", "") .. "/semdex-" .. tostring(vim.loop.getuid())
end

--- (path, source): source is "setup", "SEMDEX_SOCKET", "config <file>" or "default".
function M.resolve(opts)
  opts = opts or {}
  if opts.socket and opts.socket ~= "" then
    return expand(opts.socket), "setup"
  end
  local from_env = env("SEMDEX_SOCKET")
  if from_env then
    return expand(from_env), "SEMDEX_SOCKET"
  end
  local file = opts.config and expand(opts.config) or M.config_file()
  local configured = M.socket_from_config(file)
  if configured then
    return configured, "config " .. file
  end
  return runtime_base() .. "/semdex/semdexd.sock", "default"
end

return M
