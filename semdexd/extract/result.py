"""The value `extract` returns: what was read from one file, or why nothing was."""

from __future__ import annotations

from dataclasses import dataclass

from semdexd.extract.reader import describe_size
from semdexd.kinds import Kind


@dataclass(frozen=True)
class Extraction:
    """The outcome of extracting one file.

    ``kind`` is ``INDEXED`` (``text`` holds non-blank text with ``"\\n"`` newlines), ``TRUNCATED``
    (the same, cut at the text cap: ``reason`` says ``"truncated: ..."``), ``SKIPPED`` (nothing
    to index: binary, empty, too large, not a regular file, ...) or ``FAILED`` (the file should
    have had text but could not be read). ``reason`` is a short human sentence that starts with
    the kind, e.g. ``"skipped: binary"``; it is ``""`` for ``INDEXED``.
    ``content_hash`` is the hex sha256 of the raw bytes whenever they were read, else ``""``.
    ``file_type`` is a short type for filters (``"py"``, ``"md"``, ``"pdf"``, ...).
    """

    kind: Kind
    text: str = ""
    reason: str = ""
    content_hash: str = ""
    file_type: str = ""

    @property
    def has_text(self) -> bool:
        return self.kind.has_text


def from_reason(reason: str, *, content_hash: str = "", file_type: str = "") -> Extraction:
    """A skipped or failed `Extraction`: ``reason`` says which (``"failed: ..."``)."""
    return Extraction(Kind.of_reason(reason), "", reason, content_hash, file_type)


def from_text(text: str, *, content_hash: str, file_type: str, note: str = "") -> Extraction:
    """An `Extraction` with text (``note``: a ``"truncated: ..."`` reason), or ``"skipped: empty"``
    when ``text`` has nothing but whitespace."""
    if not text.strip():
        return from_reason("skipped: empty", content_hash=content_hash, file_type=file_type)
    return Extraction(Kind.of_reason(note), text, note, content_hash, file_type)


@dataclass(frozen=True)
class DocText:
    """``text`` of a document (``reason`` is then ``""`` or ``"truncated: ..."``), or only a
    ``reason`` (``"skipped: ..."`` / ``"failed: ..."``)."""

    text: str = ""
    reason: str = ""


def describe_chars(chars: int) -> str:
    """``8388608`` -> ``"8 MB"`` (text size; one character counted as one byte)."""
    return describe_size(chars, unit="characters")


def truncated_reason(max_chars: int) -> str:
    """The reason an ``ok`` extraction carries when its text was cut at ``max_chars``."""
    size = describe_chars(max_chars)
    return f"truncated: text above the {size} cap (max_text_mb); the first {size} are indexed"


def cap_text(text: str, max_chars: int) -> DocText:
    """``text`` cut to at most ``max_chars`` characters (at the last line break in the final
    tenth when there is one), with a "truncated" reason when it was cut."""
    if len(text) <= max_chars:
        return DocText(text=text)
    cut = text.rfind("\n", max_chars - max_chars // 10, max_chars)
    return DocText(text=text[:cut if cut > 0 else max_chars], reason=truncated_reason(max_chars))


def short_error(exc: BaseException) -> str:
    """``"ValueError: bad thing"`` on one line, at most ~100 characters."""
    message = " ".join(str(exc).split())
    name = type(exc).__name__
    if not message:
        return name
    return f"{name}: {message[:80]}"
