"""PDF (pypdf) and DOCX (streamed XML, see `docx`) -> text, bounded in memory and output.

Each function returns a `DocText`: ``text`` (with a ``"truncated: ..."`` reason when the text cap
was reached), or only a ``reason`` (``"failed: PDF is encrypted"``). Corrupt documents give a
short reason, never a traceback. The libraries are imported only when used.
"""

from __future__ import annotations

import io
from typing import Any

from semdexd.extract import docx
from semdexd.extract.decode import normalize_newlines
from semdexd.extract.filetypes import OLE_SIGNATURE
from semdexd.extract.result import DocText, short_error, truncated_reason

# Pages read at most: past this the rest of a PDF is left out (pypdf keeps every page it has
# read in memory, ~15 KB each, and a 20,000-page file costs minutes).
MAX_PDF_PAGES = 5000
# pypdf's own limits, tightened for the duration of one extraction (a context variable, not a
# global): parsing one content stream costs ~165 bytes per operation, so pypdf's default budget
# of 2M operations peaked at 390 MB on a 100 KB file; 500k (far above a dense text page's
# ~20k) bounds a page to ~85 MB. A page over a limit is left out, not the whole file.
_PYPDF_PARSE_WORK = 500_000
_PYPDF_INFLATE_BYTES = 32_000_000


def pdf_text(data: bytes, max_chars: int) -> DocText:
    """Page texts joined by a blank line, stopping at ``max_chars`` characters or `MAX_PDF_PAGES`
    pages; encrypted or text-less PDFs give a reason instead."""
    try:
        from pypdf import PdfReader, apply_configuration

        with apply_configuration(stream_parsing_work_maximum_count=_PYPDF_PARSE_WORK,
                                 zlib_maximum_output_length=_PYPDF_INFLATE_BYTES):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not _decrypt_without_password(reader):
                return DocText(reason="failed: PDF is encrypted")
            pages, note = _pages(reader, max_chars)
    except Exception as exc:  # pypdf raises many types on damaged files
        return DocText(reason=f"failed: PDF could not be read ({short_error(exc)})")
    text = "\n\n".join(pages)
    if not text.strip():
        if note.startswith("truncated: page"):   # nothing readable but over-limit pages
            return DocText(reason="failed: PDF " + note.removeprefix("truncated: ").split(";")[0])
        return DocText(reason="skipped: PDF has no text layer (scanned?)")
    if len(text) > max_chars:
        text, note = text[:max_chars], truncated_reason(max_chars)
    return DocText(text=normalize_newlines(text), reason=note)


def _pages(reader: Any, max_chars: int) -> tuple[list[str], str]:
    """Non-blank page texts until the caps; the "truncated" reason if one was reached."""
    from pypdf.errors import LimitReachedError

    pages: list[str] = []
    total = 0
    over: list[int] = []          # pages left out: above one of pypdf's limits
    for number, page in enumerate(reader.pages):
        if number >= MAX_PDF_PAGES:
            return pages, (f"truncated: more than {MAX_PDF_PAGES} pages; "
                           f"the first {MAX_PDF_PAGES} are indexed")
        try:
            text = (page.extract_text() or "").strip("\n")
        except LimitReachedError:
            over.append(number + 1)
            continue
        if text.strip():
            pages.append(text)
            total += len(text) + 2
        if total > max_chars:
            return pages, truncated_reason(max_chars)
    if over:
        return pages, (f"truncated: page(s) {', '.join(map(str, over[:5]))}{'...' if len(over) > 5 else ''} "
                       f"too large to read (content stream above the safety limits); the other pages are indexed")
    return pages, ""


def _decrypt_without_password(reader: Any) -> bool:
    """Many PDFs are encrypted with an empty user password (restrictions only): open those."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # a missing crypto backend or an unsupported handler: treat as locked
        return False


def docx_text(data: bytes, max_chars: int) -> DocText:
    """Paragraphs and table rows in document order, headings as ``#`` lines (see `docx`)."""
    if data.startswith(OLE_SIGNATURE):
        return DocText(reason="failed: DOCX is encrypted (password-protected)")
    doc = docx.docx_text(data, max_chars)
    if doc.reason and not doc.text:
        return doc
    return DocText(text=normalize_newlines(doc.text), reason=doc.reason)
