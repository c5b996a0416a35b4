-- The user commands (see :help semdex-commands). Defined by plugin/semdex.lua at startup and again
-- by require("semdex").setup(): Neovim skips plugin/ scripts under `-u NONE` / `--noplugin`, and
-- for a runtimepath entry added after startup, so setup() alone must be enough. Defining them
-- twice replaces them with the same thing. The callbacks load the main module on first use.
local M = {}

function M.create()
  vim.api.nvim_create_user_command("Semdex", function(cmd)
    local opts = {}
    if cmd.bang then
      opts.path = vim.fn.getcwd()
    end
    require("semdex").search(cmd.args, opts)
  end, { nargs = "+", bang = true, desc = "semdex: search your files by meaning (! = under the cwd)" })

  vim.api.nvim_create_user_command("SemdexSimilar", function(cmd)
    local line = nil
    if cmd.range > 0 then
      line = math.floor((cmd.line1 + cmd.line2) / 2)
    end
    require("semdex").similar(nil, line)
  end, { range = true, desc = "semdex: chunks similar to the current line (or the middle of the range)" })
end

return M
