"""Extraction: one file -> its text (plain, code, Markdown, HTML, PDF, DOCX) or a reason why not.

Public API: `extract(path, *, max_bytes) -> Extraction` (never raises, never blocks on special
files, reads the bytes once) and `file_type(path) -> str`.
"""

from semdexd.extract.extractor import extract
from semdexd.extract.filetypes import PROSE_TYPES, file_type
from semdexd.extract.result import Extraction

__all__ = ["Extraction", "PROSE_TYPES", "extract", "file_type"]
