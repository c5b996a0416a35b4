"""semdexd: a local semantic search daemon for your own files."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
