"""Persistence: the SQLite manifest (files, chunks, FTS5, journals: `manifest`), the vector store
(Chroma: `vectors`) and the previous complete index served during a rebuild (`previous`)."""
