"""Bytes -> text: BOMs, UTF-8, then charset-normalizer, then a Latin-1-ish last resort.

`decode_text` never raises. Binary data (NUL bytes without a UTF-16/32 BOM, many control bytes)
is refused with ``"skipped: binary"``; bytes that are not binary but fit no encoding with
confidence are refused with ``"skipped: undecodable text (unknown encoding)"``.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_SNIFF_BYTES = 8192
_MAX_CONTROL_RATIO = 0.05        # more control bytes than this in the first 8 KB: binary
_MIN_PRINTABLE_RATIO = 0.90      # the last resort needs mostly printable ASCII
_CHAOS_THRESHOLD = 0.2           # charset-normalizer's "mess" ceiling (its own default)
# When charset-normalizer ranks several encodings equal, prefer the common Western ones.
_PREFERRED = ("utf_8", "cp1252", "latin_1", "iso8859_15")

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),   # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CONTROL = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_PRINTABLE = bytes([*range(0x20, 0x7F), 0x09, 0x0A, 0x0C, 0x0D])

BINARY = "skipped: binary"
UNDECODABLE = "skipped: undecodable text (unknown encoding)"


@dataclass(frozen=True)
class Decoded:
    """``text`` with ``"\\n"`` newlines, or ``reason`` when the bytes are not text."""

    text: str = ""
    reason: str = ""


def decode_text(data: bytes) -> Decoded:
    """Decode ``data`` as text and normalise newlines to ``"\\n"``."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return Decoded(normalize_newlines(data[len(bom):].decode(encoding, errors="replace")))
    if looks_binary(data[:_SNIFF_BYTES]):
        return Decoded(reason=BINARY)
    try:
        return Decoded(normalize_newlines(data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    text = _detect(data)
    if text is None and _mostly_printable_ascii(data[:_SNIFF_BYTES]):
        text = _western(data)
    if text is None:
        return Decoded(reason=UNDECODABLE)
    return Decoded(normalize_newlines(text))


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR become LF."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def looks_binary(sample: bytes) -> bool:
    """NUL bytes, or more than a few control bytes, in a (BOM-less) sample."""
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    return controls > _MAX_CONTROL_RATIO * len(sample)


def _mostly_printable_ascii(sample: bytes) -> bool:
    if not sample:
        return False
    printable = len(sample) - len(sample.translate(None, _PRINTABLE))
    return printable >= _MIN_PRINTABLE_RATIO * len(sample)


def _detect(data: bytes) -> str | None:
    """charset-normalizer's best guess, preferring Western encodings among equal guesses."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data, threshold=_CHAOS_THRESHOLD))
    if not matches:
        return None
    best = matches[0]
    tied = [m for m in matches if m.chaos <= best.chaos + 1e-9 and m.coherence >= best.coherence - 1e-9]
    for preferred in _PREFERRED:
        if any(m.encoding == preferred or preferred in m.could_be_from_charset for m in tied):
            try:
                return data.decode(preferred)
            except UnicodeDecodeError:
                continue
    return str(best)


def _western(data: bytes) -> str:
    """Windows-1252 where it is defined, Latin-1 for the five bytes it leaves undefined."""
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")
