"""The thin semdex client: the `semdex` CLI and an importable `Client` for the daemon's socket."""
