-- semdex for Neovim (>= 0.7, no dependencies): search your files by meaning through semdexd.
--
--   require("semdex").setup({ socket = nil, config = nil, limit = 20, mode = nil,
--                             picker = "auto", timeout_ms = 60000, show_idle = false })
--   :Semdex {query}        hits -> quickfix list (or telescope / fzf-lua when installed, picker="auto")
--   :Semdex! {query}       only files under the current working directory
--   :[range]SemdexSimilar  chunks similar to the current line (the middle line of a range)
--   require("semdex").statusline()   indexing progress, pushed by the daemon
--   :checkhealth semdex
--
-- Every request is asynchronous (libuv pipe, JSON lines): the editor never waits for a search.
local rpc = require("semdex.rpc")
local socket_path = require("semdex.socket_path")
local progress = require("semdex.progress")

local M = {}

local defaults = {
  socket = nil, -- socket path; nil: as the `semdex` CLI finds it (see socket_path.lua)
  config = nil, -- semdexd config file to read `[server] socket` from
  limit = 20,
  mode = nil, -- hybrid | semantic | lexical (nil: the daemon's default)
  picker = "auto", -- auto | quickfix | telescope | fzf-lua
  timeout_ms = 60000,
  show_idle = false, -- statusline(): "semdex idle" instead of "" when nothing is being indexed
  reconnect_ms = 5000,
}

M.config = vim.deepcopy(defaults)
local conn = nil
local conn_path = nil

--- Configure, and define :Semdex and :SemdexSimilar (plugin/semdex.lua is not sourced under
--- `nvim -u NONE`, `--noplugin`, or when the plugin joins the runtimepath after startup).
function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  require("semdex.commands").create()
  if conn then
    conn:close()
    conn = nil
  end
  progress.stop()
end

--- The socket path in use and which rule chose it.
function M.socket()
  return socket_path.resolve(M.config)
end

local function connection()
  local path = M.socket()
  if not conn or conn_path ~= path then
    if conn then
      conn:close()
    end
    conn, conn_path = rpc.new(path), path
  end
  return conn
end

--- Call `method` with `params`; cb(err, result) on the main loop. Returns nothing.
--- The connection is kept; when the daemon closed it meanwhile (restart, idle timeout) the call
--- is sent once more on a new one.
function M.request(method, params, cb)
  connection():request(method, params, function(err, result)
    if err and err.code == "transport" then
      connection():request(method, params, cb, M.config.timeout_ms)
    else
      cb(err, result)
    end
  end, M.config.timeout_ms)
end

local function notify_error(err)
  vim.notify("semdex: " .. rpc.format_error(err), vim.log.levels.ERROR)
end

--- A hit as a quickfix item: the line of its snippet's first non-blank line.
function M.qf_item(hit)
  local lines = vim.split(tostring(hit.snippet or ""), "\n", { plain = true })
  local offset, first = 0, ""
  for i, l in ipairs(lines) do
    if l:match("%S") then
      offset, first = i - 1, l
      break
    end
  end
  local lnum = tonumber(hit.start_line) or 1
  if not rpc.is_nil(hit.snippet_line) and hit.snippet_line then
    lnum = tonumber(hit.snippet_line) + offset
  end
  local col = (#first - #first:gsub("^%s+", "")) + 1
  return {
    filename = hit.path,
    lnum = lnum,
    col = col,
    text = string.format("[%.3f] %s", tonumber(hit.score) or 0, vim.trim(first)),
  }
end

local function show_quickfix(title, hits)
  local items = vim.tbl_map(M.qf_item, hits)
  vim.fn.setqflist({}, " ", { title = title, items = items })
  if #items > 0 then
    vim.cmd("botright copen")
  end
end

local function show_telescope(title, hits)
  local pickers = require("telescope.pickers")
  local finders = require("telescope.finders")
  local conf = require("telescope.config").values
  local items = vim.tbl_map(M.qf_item, hits)
  pickers.new({}, {
    prompt_title = title,
    finder = finders.new_table({
      results = items,
      entry_maker = function(item)
        return {
          value = item,
          display = vim.fn.fnamemodify(item.filename, ":~:.") .. ":" .. item.lnum .. " " .. item.text,
          ordinal = item.filename .. " " .. item.text,
          filename = item.filename,
          lnum = item.lnum,
          col = item.col,
        }
      end,
    }),
    previewer = conf.grep_previewer({}),
    sorter = conf.generic_sorter({}),
  }):find()
end

local function show_fzf(title, hits)
  local lines = vim.tbl_map(function(item)
    return string.format("%s:%d:%d:%s", item.filename, item.lnum, item.col, item.text)
  end, vim.tbl_map(M.qf_item, hits))
  require("fzf-lua").fzf_exec(lines, { prompt = title .. "> ", previewer = "builtin", actions = require("fzf-lua").defaults.actions.files })
end

local function has(mod)
  return (pcall(require, mod))
end

--- The picker to use for `choice` ("auto" prefers telescope, then fzf-lua, then quickfix).
function M.picker(choice)
  choice = choice or M.config.picker
  if choice == "auto" then
    if has("telescope") then
      return "telescope"
    elseif has("fzf-lua") then
      return "fzf-lua"
    end
    return "quickfix"
  end
  return choice
end

--- Show `hits` with the configured picker (an empty list says "no results").
function M.show(title, hits)
  if #hits == 0 then
    vim.notify("semdex: no results for " .. title, vim.log.levels.WARN)
    vim.fn.setqflist({}, " ", { title = title, items = {} })
    return
  end
  local picker = M.picker()
  if picker == "telescope" then
    show_telescope(title, hits)
  elseif picker == "fzf-lua" then
    show_fzf(title, hits)
  else
    show_quickfix(title, hits)
  end
end

--- Show a search/similar result: its hits; when none reach the daemon's cutoff, "no good match"
--- and the weak hits, marked; the daemon's notices (filter matched nothing, indexing running).
function M.show_result(title, result)
  local idx = result.indexing
  if type(idx) == "table" and not rpc.is_nil(idx) then
    vim.notify(string.format("semdex: indexing %d/%d files; results so far", idx.done or 0, idx.total or 0),
      vim.log.levels.INFO)
  end
  if type(result.notice) == "string" then
    vim.notify("semdex: " .. result.notice, vim.log.levels.WARN)
  end
  local hits = result.hits or {}
  local weak = result.weak
  if #hits == 0 and type(weak) == "table" and #weak > 0 then
    vim.notify(string.format("semdex: no good match (every hit scores below %.2f); weak hits shown",
      tonumber(result.min_score) or 0), vim.log.levels.WARN)
    M.show(title .. " (weak)", weak)
    return
  end
  M.show(title, hits)
end

local function run_hits(method, params, title, cb)
  M.request(method, params, function(err, result)
    if err then
      notify_error(err)
    else
      M.show_result(title, result)
    end
    if cb then
      cb(err, result)
    end
  end)
end

--- Search; opts: limit, mode, path (a folder), glob, type. cb(err, result) after the hits are shown.
function M.search(query, opts, cb)
  opts = opts or {}
  if not query or not query:match("%S") then
    notify_error({ code = "bad_request", message = "usage: :Semdex {query}" })
    return
  end
  local params = { query = query, limit = opts.limit or M.config.limit }
  params.mode = opts.mode or M.config.mode
  for _, key in ipairs({ "path", "glob", "type", "since", "per_file" }) do
    params[key] = opts[key]
  end
  if params.path then
    params.path = vim.fn.fnamemodify(params.path, ":p"):gsub("/$", "")
  end
  run_hits("search", params, "semdex: " .. query, cb)
end

--- Chunks similar to `line` of `file` (default: the current buffer and cursor line).
function M.similar(file, line, cb)
  file = file or vim.api.nvim_buf_get_name(0)
  if file == "" then
    notify_error({ code = "bad_request", message = ":SemdexSimilar needs a buffer with a file" })
    return
  end
  file = vim.fn.fnamemodify(file, ":p")
  line = line or vim.api.nvim_win_get_cursor(0)[1]
  run_hits("similar", { path = file, line = line, limit = M.config.limit },
    "semdex similar: " .. vim.fn.fnamemodify(file, ":~:.") .. ":" .. line, cb)
end

--- Statusline component: indexing progress pushed by the daemon ("" when idle or not running).
--- The first call starts following the daemon.
function M.statusline()
  local path = M.socket()
  if progress.path ~= path or not progress.conn then
    if progress.path ~= path then
      progress.start(path, M.config)
    end
  end
  return progress.text(M.config)
end

return M
