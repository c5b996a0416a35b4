-- :Semdex[!] {query}, :[range]SemdexSimilar (see :help semdex). Loads the module on first use.
-- require("semdex").setup() defines the same commands, for when this file is not sourced.
if vim.g.loaded_semdex then
  return
end
vim.g.loaded_semdex = 1

require("semdex.commands").create()
