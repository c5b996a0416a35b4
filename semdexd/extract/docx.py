"""DOCX -> text by streaming its XML: bounded in memory and output whatever the file expands to.

The zip directory is checked first (declared sizes and compression ratio: a zip bomb is refused
without inflating it); the main document part is then parsed incrementally (lxml ``iterparse``,
no DTD, no entities, no network), every finished run and block is freed, and parsing stops once
``max_chars`` characters of text were produced. Paragraphs and table rows come out in document
order, headings (``Title``, ``Heading 1``..``6`` styles) as ``#`` lines, table cells of a row
joined by `` | ``.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

from semdexd.extract.result import DocText, short_error, truncated_reason

_MAIN_PART = "word/document.xml"
_MAX_PART_BYTES = 1 << 30          # a main part declared above 1 GiB is refused outright
_BOMB_MIN_BYTES = 16 << 20         # ... and one above 16 MiB that inflates more than:
_BOMB_RATIO = 100                  # (real documents: 3-20x; the bombs seen: ~1000x)
_SMALL_PART_BYTES = 4 << 20        # styles and relationships parts we read whole
_HEADING = re.compile(r"^heading ([1-6])$")
_OFFICE_DOCUMENT = "/officeDocument"


def docx_text(data: bytes, max_chars: int) -> DocText:
    """The text of the DOCX in ``data``, at most ``max_chars`` characters (then a "truncated"
    reason), or a reason it has none (damaged, not a DOCX, a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo(_main_part(archive))
            refused = _bomb_reason(info)
            if refused:
                return DocText(reason=refused)
            headings = _heading_styles(archive)
            with archive.open(info) as stream:
                return _stream_text(stream, headings, max_chars)
    except Exception as exc:  # zip, XML and package errors of a damaged file
        return DocText(reason=f"failed: DOCX could not be read ({short_error(exc)})")


def _bomb_reason(info: zipfile.ZipInfo) -> str:
    size, packed = info.file_size, max(1, info.compress_size)
    ratio = size // packed
    if size > _MAX_PART_BYTES or (size > _BOMB_MIN_BYTES and ratio > _BOMB_RATIO):
        return (f"skipped: DOCX looks like a zip bomb (its text part expands {ratio}x "
                f"to {size >> 20} MB)")
    return ""


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _small_part(archive: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > _SMALL_PART_BYTES:
        return None
    return archive.read(info)


def _parse_small(data: bytes) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(data, parser)


def _main_part(archive: zipfile.ZipFile) -> str:
    """The officeDocument part named by ``_rels/.rels``, else ``word/document.xml``."""
    rels = _small_part(archive, "_rels/.rels")
    if rels is not None:
        for rel in _parse_small(rels):
            if str(rel.get("Type", "")).endswith(_OFFICE_DOCUMENT):
                target = str(rel.get("Target", "")).lstrip("/")
                if target in archive.NameToInfo:
                    return target
    if _MAIN_PART not in archive.NameToInfo:
        raise KeyError(f"no {_MAIN_PART}")
    return _MAIN_PART


def _heading_styles(archive: zipfile.ZipFile) -> dict[str, int]:
    """styleId -> heading level (0 for Title) from ``word/styles.xml``."""
    out: dict[str, int] = {}
    data = _small_part(archive, "word/styles.xml")
    if data is None:
        return out
    try:
        root = _parse_small(data)
    except Exception:  # broken styles are not worth failing the document
        return out
    for style in root:
        if _local(style.tag) != "style":
            continue
        style_id = _attr(style, "styleId")
        name = next((_attr(c, "val") for c in style if _local(c.tag) == "name"), "").lower()
        level = 0 if name == "title" else _level(name)
        if style_id and level is not None:
            out[style_id] = level
    return out


def _level(name: str) -> int | None:
    match = _HEADING.match(name)
    return int(match.group(1)) if match else None


def _attr(element: Any, name: str) -> str:
    for key, value in element.attrib.items():
        if _local(key) == name:
            return str(value)
    return ""


@dataclass
class _State:
    """What the streaming parse has produced so far."""

    max_chars: int
    blocks: list[str] = field(default_factory=list)
    total: int = 0
    paragraph: list[str] = field(default_factory=list)
    style: str = ""
    cells: list[str] = field(default_factory=list)
    tables: int = 0
    full: bool = False

    def add(self, text: str) -> None:
        room = self.max_chars - self.total
        if len(text) >= room:
            text, self.full = text[:max(0, room)], True
        self.paragraph.append(text)
        self.total += len(text)

    def end_paragraph(self, headings: dict[str, int]) -> None:
        text = "".join(self.paragraph)
        self.paragraph, style, self.style = [], self.style, ""
        if self.tables:
            self.cells.append(text)     # a cell's paragraphs, joined with the cell
            return
        if text.strip():
            level = headings.get(style, _fallback_level(style))
            prefix = "" if level is None else "#" * max(1, level) + " "
            self.blocks.append(prefix + text)

    def text(self) -> str:
        return "\n\n".join(b for b in self.blocks if b.strip())


def _fallback_level(style: str) -> int | None:
    """Without a styles part: the built-in ids ``Title`` and ``Heading1``..``Heading6``."""
    if style == "Title":
        return 0
    return _level(style.lower().replace("heading", "heading ", 1)) if style else None


def _stream_text(stream: IO[bytes], headings: dict[str, int], max_chars: int) -> DocText:
    from lxml import etree

    state = _State(max_chars)
    row_cells: list[list[str]] = []
    events = etree.iterparse(stream, events=("start", "end"), resolve_entities=False,
                             no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)
    for event, element in events:
        name = _local(element.tag)
        if event == "start":
            if name == "tbl":
                state.tables += 1
            elif name == "tr" and state.tables == 1:
                row_cells.append([])
            continue
        if name == "t":
            state.add(element.text or "")
        elif name == "tab":
            state.add("\t")
        elif name in ("br", "cr"):
            state.add("\n")
        elif name == "pStyle":
            state.style = _attr(element, "val")
        elif name == "p":
            state.end_paragraph(headings)
        elif name == "tc" and state.tables == 1:
            cell = " ".join(" ".join(state.cells).split())
            state.cells = []
            if cell and row_cells:
                row_cells[-1].append(cell)
        elif name == "tbl":
            state.tables -= 1
            if not state.tables:
                rows = [" | ".join(cells) for cells in row_cells]
                row_cells = []
                if any(rows):
                    state.blocks.append("\n".join(rows))
        if name in ("r", "p", "tc", "tr", "tbl", "sdt"):
            _free(element)
        if state.full:
            if state.paragraph:
                state.end_paragraph(headings)
            if row_cells:
                state.blocks.append("\n".join(" | ".join(cells) for cells in row_cells))
            return DocText(text=state.text(), reason=truncated_reason(max_chars))
    return DocText(text=state.text())


def _free(element: Any) -> None:
    """Drop a finished element and the already-finished siblings before it."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    while element.getprevious() is not None and parent is not None:
        del parent[0]
