"""Text as the model sees it: safe for UTF-8 transports, and its content key for the cache."""

from __future__ import annotations

import hashlib
import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """``text`` encodable as UTF-8: lone surrogates (from undecodable file names or bytes read
    with ``surrogateescape``) become U+FFFD. Other text is returned unchanged (same object)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def cache_key(model_id: str, text: str) -> bytes:
    """32-byte key of ``text`` (already prefixed and cleaned) embedded by model ``model_id``."""
    digest = hashlib.sha256(model_id.encode("utf-8"))
    digest.update(b"\0")
    digest.update(text.encode("utf-8"))
    return digest.digest()
