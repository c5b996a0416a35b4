"""The value `extract` returns: what was read from one file, or why nothing was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True)
class Extraction:
    """The outcome of extracting one file.

    ``status`` is ``"ok"`` (``text`` holds non-blank text with ``"\\n"`` newlines), ``"skipped"``
    (nothing to index: binary, empty, too large, not a regular file, ...) or ``"failed"`` (the
    file should have had text but could not be read). ``reason`` is a short human sentence that
    starts with the status, e.g. ``"skipped: binary"``; it is ``""`` when ``status`` is ``"ok"``.
    ``content_hash`` is the hex sha256 of the raw bytes whenever they were read, else ``""``.
    ``file_type`` is a short type for filters (``"py"``, ``"md"``, ``"pdf"``, ...).
    """

    status: Status
    text: str = ""
    reason: str = ""
    content_hash: str = ""
    file_type: str = ""


def from_reason(reason: str, *, content_hash: str = "", file_type: str = "") -> Extraction:
    """A skipped/failed `Extraction` whose status is the reason's prefix (``"failed: ..."``)."""
    status: Status = "failed" if reason.startswith("failed") else "skipped"
    return Extraction(status, "", reason, content_hash, file_type)


def from_text(text: str, *, content_hash: str, file_type: str) -> Extraction:
    """An ``ok`` `Extraction`, or ``"skipped: empty"`` when ``text`` has nothing but whitespace."""
    if not text.strip():
        return from_reason("skipped: empty", content_hash=content_hash, file_type=file_type)
    return Extraction("ok", text, "", content_hash, file_type)
