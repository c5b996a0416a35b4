-- Indexing progress for the statusline, pushed by the daemon (`subscribe`), never polled.
--
-- start(path, opts) opens one connection, asks `status` once for the current figures, then
-- `subscribe`s: every notification (progress or state change) updates `M.current` and fires
-- `User SemdexProgress` (and redraws the statusline). When the daemon is down or goes away the
-- text is empty and the connection is retried every `opts.reconnect_ms` (default 5000). A daemon
-- without `subscribe` (older than the plugin) gets one `status` call per `opts.poll_ms` instead.
local rpc = require("semdex.rpc")

-- M.mode: nil until known, then "subscribed" or "polling" (daemon without subscribe).
local M = { current = nil, events = 0, conn = nil, path = nil, subscribed = false, mode = nil }
local timer = nil

local function merge(fields)
  if type(fields) ~= "table" then
    return
  end
  M.current = M.current or {}
  for k, v in pairs(fields) do
    if not rpc.is_nil(v) then
      M.current[k] = v
    elseif M.current[k] ~= nil then
      M.current[k] = nil
    end
  end
end

local function changed()
  pcall(vim.cmd, "redrawstatus")
  pcall(vim.api.nvim_exec_autocmds, "User", { pattern = "SemdexProgress", modeline = false })
end

--- One pushed message: {method = event, params = {...}} (msgpack-rpc style) or {event = ..., ...}.
function M.on_notify(msg)
  local params = msg.params
  if type(params) == "table" and params[1] ~= nil and type(params[1]) == "table" then
    params = params[1]
  end
  if type(params) ~= "table" then
    params = msg
  end
  merge(params)
  M.events = M.events + 1
  changed()
end

--- The statusline text: "" when unknown or idle (unless opts.show_idle), else e.g.
--- "semdex 3/10 42%" while indexing, "semdex paused", "semdex error".
function M.text(opts)
  local st = M.current
  if not st or not st.state then
    return ""
  end
  local state = st.state
  if state == "indexing" or (state ~= "idle" and (tonumber(st.files_queued) or 0) > 0) then
    -- files done (indexed, skipped or failed): `progress` events say it, `status` implies it
    local total = tonumber(st.files_total) or 0
    local done = tonumber(st.files_done) or (total - (tonumber(st.files_queued) or 0))
    if total > 0 then
      return string.format("semdex %d/%d %d%%", done, total, math.floor(100 * done / total))
    end
    return "semdex indexing"
  elseif state == "idle" then
    return (opts and opts.show_idle) and "semdex idle" or ""
  end
  return "semdex " .. tostring(state)
end

local function schedule_retry(ms, fn)
  if timer then
    timer:stop()
  else
    timer = vim.loop.new_timer()
  end
  timer:start(ms, 0, vim.schedule_wrap(fn))
end

local connect

local function poll(opts)
  if not M.conn then
    return
  end
  M.conn:request("status", nil, function(err, st)
    if not err then
      merge(st)
      changed()
    end
    schedule_retry(opts.poll_ms or 2000, function()
      poll(opts)
    end)
  end, 10000)
end

connect = function(opts)
  M.subscribed = false
  M.conn = rpc.new(M.path, {
    on_notify = M.on_notify,
    on_close = function()
      M.current, M.subscribed, M.conn, M.mode = nil, false, nil, nil
      changed()
      schedule_retry(opts.reconnect_ms or 5000, function()
        if not M.conn and M.path then
          connect(opts)
        end
      end)
    end,
  })
  local conn = M.conn
  conn:request("status", nil, function(err, st)
    if err then
      return -- not running: on_close schedules the retry
    end
    merge(st)
    changed()
  end, 10000)
  conn:request("subscribe", { events = { "progress", "state" } }, function(err)
    if err and err.code == "unknown_method" then
      M.mode = "polling"
      poll(opts) -- an older daemon: fall back to a status call every poll_ms
    elseif not err then
      M.subscribed, M.mode = true, "subscribed"
    end
  end, 10000)
end

--- Follow the daemon on `path` (idempotent while running for the same path).
function M.start(path, opts)
  if M.path == path and M.conn then
    return
  end
  M.stop()
  M.path = path
  connect(opts or {})
end

function M.stop()
  M.path = nil
  if timer then
    timer:stop()
  end
  if M.conn then
    local conn = M.conn
    M.conn = nil
    conn.on_close = nil
    conn:close()
  end
  M.current, M.subscribed, M.mode = nil, false, nil
end

return M
