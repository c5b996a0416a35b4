-- :Semdex[!] {query}, :[range]SemdexSimilar (see :help semdex). Loads the module on first use.
if vim.g.loaded_semdex then
  return
end
vim.g.loaded_semdex = 1

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
