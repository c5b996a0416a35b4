"""Operating-system helpers: private files and folders (`private`), the default worker count
(`resources`), imports the daemon never makes (`lean`)."""
