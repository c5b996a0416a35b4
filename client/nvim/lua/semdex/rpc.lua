-- A connection to semdexd over its Unix socket, speaking newline-delimited JSON (docs/protocol.md)
-- on a libuv pipe: fully asynchronous on Neovim 0.7, errors keep their {code, message}, and pushed
-- notifications arrive as plain data (on an rpc channel Neovim would run them as API calls).
--
-- Conn.new(path, { on_notify = fn(msg), on_close = fn(err) }) -> conn
-- conn:request(method, params, cb, timeout_ms): cb(err, result) runs on the main loop (scheduled);
--   err = { code = "...", message = "..." }; codes of our own: not_running, transport, timeout.
-- conn:close()
-- M.request_sync(path, method, params, timeout_ms) -> err, result (waits with vim.wait).
local M = {}
local uv = vim.loop

local START_HINT = "start it with `semdexd start [FOLDER ...]` (or `systemctl --user start semdexd`)"

local function is_nil(v)
  return v == nil or v == vim.NIL
end

--- A readable error for a failed connect: `err` is luv's "ECODE: text".
function M.connect_error(path, err)
  local code = tostring(err):match("^(%u+)") or ""
  if code == "ENOENT" or code == "ECONNREFUSED" then
    return { code = "not_running", message = "semdexd is not running (nothing listens on " .. path .. "); " .. START_HINT }
  elseif code == "EACCES" or code == "EPERM" then
    return { code = "transport", message = "permission denied on " .. path .. " (another user's daemon?)" }
  end
  return { code = "transport", message = "cannot connect to " .. path .. ": " .. tostring(err) }
end

--- "message (code)" for a person.
function M.format_error(err)
  if type(err) ~= "table" then
    return tostring(err)
  end
  if err.code == "not_running" or err.code == "transport" or err.code == "timeout" then
    return tostring(err.message)
  end
  return string.format("semdexd refused the request (%s): %s", tostring(err.code), tostring(err.message))
end

local Conn = {}
Conn.__index = Conn

function M.new(path, handlers)
  handlers = handlers or {}
  return setmetatable({
    path = path,
    pipe = nil,
    state = "closed", -- closed | connecting | open
    buf = "",
    next_id = 0,
    pending = {}, -- id -> { cb, timer }
    queue = {}, -- lines written once connected
    on_notify = handlers.on_notify,
    on_close = handlers.on_close,
  }, Conn)
end

function Conn:_finish(id, err, result)
  local p = self.pending[id]
  if not p then
    return
  end
  self.pending[id] = nil
  if p.timer then
    p.timer:stop()
    p.timer:close()
  end
  vim.schedule(function()
    p.cb(err, result)
  end)
end

function Conn:_fail(err)
  if self.pipe then
    local pipe = self.pipe
    self.pipe = nil
    if not pipe:is_closing() then
      pipe:close()
    end
  end
  local was = self.state
  self.state = "closed"
  self.buf = ""
  self.queue = {}
  for id in pairs(self.pending) do
    self:_finish(id, err, nil)
  end
  if self.on_close and was ~= "closed" then
    local cb = self.on_close
    vim.schedule(function()
      cb(err)
    end)
  end
end

function Conn:_feed(data)
  self.buf = self.buf .. data
  while true do
    local nl = self.buf:find("\n", 1, true)
    if not nl then
      return
    end
    local line = self.buf:sub(1, nl - 1)
    self.buf = self.buf:sub(nl + 1)
    if line:match("%S") then
      local ok, msg = pcall(vim.json.decode, line)
      if ok and type(msg) == "table" then
        self:_dispatch(msg)
      end
    end
  end
end

function Conn:_dispatch(msg)
  local id = msg.id
  if not is_nil(id) and self.pending[id] then
    local err = not is_nil(msg.error) and msg.error or nil
    if type(err) == "table" then
      err = { code = tostring(err.code or "error"), message = tostring(err.message or vim.inspect(err)) }
    elseif err ~= nil then
      err = { code = "error", message = tostring(err) }
    end
    self:_finish(id, err, (err == nil) and msg.result or nil)
  elseif self.on_notify and is_nil(id) then
    local cb = self.on_notify
    vim.schedule(function()
      cb(msg)
    end)
  end
end

function Conn:_open()
  self.state = "connecting"
  local pipe = uv.new_pipe(false)
  self.pipe = pipe
  pipe:connect(self.path, function(err)
    if self.pipe ~= pipe then
      return
    end
    if err then
      self:_fail(M.connect_error(self.path, err))
      return
    end
    self.state = "open"
    pipe:read_start(function(rerr, data)
      if self.pipe ~= pipe then
        return
      end
      if rerr or data == nil then
        self:_fail({ code = "transport", message = "semdexd closed the connection" .. (rerr and (": " .. rerr) or "") })
      else
        self:_feed(data)
      end
    end)
    local queued = self.queue
    self.queue = {}
    for _, line in ipairs(queued) do
      pipe:write(line)
    end
  end)
end

function Conn:request(method, params, cb, timeout_ms)
  self.next_id = self.next_id + 1
  local id = self.next_id
  local msg = { id = id, method = method }
  if params ~= nil and next(params) ~= nil then
    msg.params = params
  end
  local line = vim.json.encode(msg) .. "\n"
  local entry = { cb = cb }
  self.pending[id] = entry
  if timeout_ms and timeout_ms > 0 then
    entry.timer = uv.new_timer()
    entry.timer:start(timeout_ms, 0, function()
      self:_finish(id, { code = "timeout", message = string.format("no reply from semdexd within %.0f s (%s)", timeout_ms / 1000, method) }, nil)
    end)
  end
  if self.state == "open" then
    self.pipe:write(line)
  else
    table.insert(self.queue, line)
    if self.state == "closed" then
      self:_open()
    end
  end
  return id
end

function Conn:close()
  local cb = self.on_close
  self.on_close = nil
  self:_fail({ code = "transport", message = "connection closed" })
  self.on_close = cb
end

--- Blocking call (waits on the event loop, so the UI keeps drawing): err, result.
function M.request_sync(path, method, params, timeout_ms)
  timeout_ms = timeout_ms or 10000
  local conn = M.new(path)
  local done, err, result = false, nil, nil
  conn:request(method, params, function(e, r)
    done, err, result = true, e, r
  end, timeout_ms)
  vim.wait(timeout_ms + 1000, function()
    return done
  end, 5)
  conn:close()
  if not done then
    return { code = "timeout", message = "no reply from semdexd (" .. method .. ")" }, nil
  end
  return err, result
end

M.is_nil = is_nil
return M
