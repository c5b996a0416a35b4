"""semdexd's typed API: one request type per method (`types`) and their JSON Schema (`schema`).

Both import only the standard library: the client, the MCP server and the search code use them
to validate and describe requests without loading the daemon. The handlers that serve these
requests live a floor above, in `semdexd.app.handlers`.
"""
