"""PDF (pypdf) and DOCX (python-docx) -> text. The libraries are imported only when used.

Each function returns a `DocText`: ``text`` or a ``reason`` (``"failed: PDF is encrypted"``).
Corrupt documents give a short reason, never a traceback.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from semdexd.extract.decode import normalize_newlines
from semdexd.extract.filetypes import OLE_SIGNATURE

_HEADING_STYLE = re.compile(r"^Heading ([1-6])$")


@dataclass(frozen=True)
class DocText:
    """``text`` of a document, or ``reason`` (``"skipped: ..."`` / ``"failed: ..."``)."""

    text: str = ""
    reason: str = ""


def pdf_text(data: bytes) -> DocText:
    """Page texts joined by a blank line; encrypted or text-less PDFs give a reason instead."""
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypt_without_password(reader):
            return DocText(reason="failed: PDF is encrypted")
        pages = [_page_text(page) for page in reader.pages]
    except Exception as exc:  # pypdf raises many types on damaged files
        return DocText(reason=f"failed: PDF could not be read ({_short(exc)})")
    text = "\n\n".join(page.strip("\n") for page in pages if page.strip())
    if not text.strip():
        return DocText(reason="skipped: PDF has no text layer (scanned?)")
    return DocText(text=normalize_newlines(text))


def _decrypt_without_password(reader: Any) -> bool:
    """Many PDFs are encrypted with an empty user password (restrictions only): open those."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # a missing crypto backend or an unsupported handler: treat as locked
        return False


def _page_text(page: Any) -> str:
    return page.extract_text() or ""


def docx_text(data: bytes) -> DocText:
    """Paragraphs and table rows in document order; headings as ``#`` lines."""
    if data.startswith(OLE_SIGNATURE):
        return DocText(reason="failed: DOCX is encrypted (password-protected)")
    try:
        from docx import Document

        document = Document(io.BytesIO(data))
        blocks = [_block_text(block) for block in document.iter_inner_content()]
    except Exception as exc:  # zip, XML and package errors of a damaged file
        return DocText(reason=f"failed: DOCX could not be read ({_short(exc)})")
    text = "\n\n".join(block for block in blocks if block.strip())
    return DocText(text=normalize_newlines(text))


def _block_text(block: Any) -> str:
    if hasattr(block, "rows"):
        return "\n".join(_row_text(row) for row in block.rows)
    prefix = _heading_prefix(block)
    return prefix + block.text if block.text.strip() else ""


def _heading_prefix(paragraph: Any) -> str:
    try:
        name = paragraph.style.name if paragraph.style is not None else ""
    except Exception:  # a broken style reference is not worth failing the document
        return ""
    if name == "Title":
        return "# "
    match = _HEADING_STYLE.match(name or "")
    return "#" * int(match.group(1)) + " " if match else ""


def _row_text(row: Any) -> str:
    """Cell texts of one row, merged cells once, separated by `` | ``."""
    seen: list[Any] = []     # the cells' XML elements (lxml compares them by identity)
    cells: list[str] = []
    for cell in row.cells:
        if cell._tc in seen:
            continue
        seen.append(cell._tc)
        text = " ".join(cell.text.split())
        if text:
            cells.append(text)
    return " | ".join(cells)


def _short(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    name = type(exc).__name__
    if not message:
        return name
    return f"{name}: {message[:80]}"
