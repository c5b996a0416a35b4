"""`extract`: one file path -> an `Extraction` (text, or a reason why not). Never raises."""

from __future__ import annotations

import hashlib
from pathlib import Path

from semdexd.extract.decode import decode_text
from semdexd.extract.documents import docx_text, pdf_text
from semdexd.extract.filetypes import (
    PDF_SIGNATURE,
    UNSUPPORTED_DOCUMENTS,
    extension,
    file_type,
    has_binary_signature,
    is_binary_extension,
)
from semdexd.extract.html import html_to_text
from semdexd.extract.reader import probe, read_bytes
from semdexd.extract.result import DocText, Extraction, cap_text, from_reason, from_text
from semdexd.kinds import Kind

# Default cap of the extracted text (characters) when the caller gives none.
DEFAULT_MAX_CHARS = 8 << 20


def extract(path: Path, *, max_bytes: int, max_chars: int = DEFAULT_MAX_CHARS) -> Extraction:
    """Read ``path`` once and return its text, or a reason it has none.

    The text is at most ``max_chars`` characters: longer text is cut (at a line break near the
    cap) and the result is ``TRUNCATED``, with a ``"truncated: ..."`` reason. Documents are
    never expanded whole in memory (DOCX is streamed, PDF read page by page up to the cap).

    Never raises and never blocks on a fifo, socket or device. Files larger than ``max_bytes``,
    binary files (by extension, signature or content) and empty files are skipped; unreadable,
    vanished and damaged files fail. ``content_hash`` is set whenever the bytes were read.
    """
    try:
        return _extract(Path(path), max_bytes, max(1, max_chars))
    except Exception as exc:  # a last guard: one bad file must never stop the indexer
        return from_reason(f"failed: unexpected {type(exc).__name__}", file_type=_safe_type(path))


def _safe_type(path: Path) -> str:
    try:
        return file_type(Path(path))
    except Exception:
        return ""


def _extract(path: Path, max_bytes: int, max_chars: int) -> Extraction:
    kind = file_type(path)
    if is_binary_extension(path):
        return _refuse_without_reading(path, "skipped: binary", kind)
    if extension(path) in UNSUPPORTED_DOCUMENTS:
        reason = f"skipped: unsupported document format ({extension(path)})"
        return _refuse_without_reading(path, reason, kind)
    read = read_bytes(path, max_bytes=max_bytes)
    if read.reason:
        return from_reason(read.reason, file_type=kind)
    digest = hashlib.sha256(read.data).hexdigest()
    if kind == "pdf" or read.data.startswith(PDF_SIGNATURE):
        return _from_document(pdf_text(read.data, max_chars), digest, "pdf")
    if kind == "docx":
        return _from_document(docx_text(read.data, max_chars), digest, kind)
    if has_binary_signature(read.data):
        return from_reason("skipped: binary", content_hash=digest, file_type=kind)
    decoded = decode_text(read.data)
    if decoded.reason:
        return from_reason(decoded.reason, content_hash=digest, file_type=kind)
    text = html_to_text(decoded.text) if kind == "html" else decoded.text
    return _from_document(cap_text(text, max_chars), digest, kind)


def _refuse_without_reading(path: Path, reason: str, kind: str) -> Extraction:
    """Skip by name, but still report a file that is not there or not a file for what it is."""
    return from_reason(probe(path) or reason, file_type=kind)


def _from_document(doc: DocText, digest: str, kind: str) -> Extraction:
    if Kind.of_reason(doc.reason) not in (Kind.INDEXED, Kind.TRUNCATED):
        return from_reason(doc.reason, content_hash=digest, file_type=kind)
    return from_text(doc.text, content_hash=digest, file_type=kind, note=doc.reason)
