"""Extraction: one file -> its text (plain, code, Markdown, HTML, PDF, DOCX) or a reason why not.

Public API: `extract(path, *, max_bytes) -> Extraction` (never raises, never blocks on special
files, reads the bytes once) and `file_type(path) -> str`.
"""

from semdexd.extract.extractor import extract
from semdexd.extract.filetypes import PROSE_TYPES, file_type
from semdexd.extract.result import Extraction

# Bump when extraction may now give text (or other text) where it gave a skip or failure before:
# files skipped or failed by an older version are read again after an upgrade.
EXTRACTOR_VERSION = "2"

__all__ = ["EXTRACTOR_VERSION", "PROSE_TYPES", "Extraction", "extract", "file_type"]
