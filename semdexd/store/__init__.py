"""Persistence: the SQLite manifest (schema, files and chunks: `manifest`; beside it, on its one
connection (`database`): FTS5 ranking (`lexical`), what a search filter lets through (`filtered`),
the crash journals (`journal`), the vectors' float16 copies (`copies`)), the vector store
(Chroma: `vectors`) and the previous complete index served during a rebuild (`previous`)."""
