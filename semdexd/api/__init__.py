"""semdexd's typed API: one request type per method (`types`), their JSON Schema (`schema`),
and the handlers that serve them (`handlers`, imported only by the daemon).

`semdexd.api.types` and `semdexd.api.schema` import only the standard library: the client and
the MCP server use them to validate and describe requests without loading the daemon.
"""
