"""Chunking: extracted text -> chunks measured in model tokens, cut at structural boundaries,
stable under edits. Public API: `chunk_text`, `cap_chunks`, `Chunk`, `CHUNKER_VERSION`."""

from semdexd.chunk.assemble import Chunk
from semdexd.chunk.chunker import CHUNKER_VERSION, cap_chunks, chunk_budget_chars, chunk_text

__all__ = ["CHUNKER_VERSION", "Chunk", "cap_chunks", "chunk_budget_chars", "chunk_text"]
