"""How good a place each line is to start a chunk: a small integer "strength" per line.

Decided from the line and its immediate neighbours only (blank line before, indentation, a
definition keyword, a Markdown heading), so an edit changes the strengths of its own lines
only. Blank lines get `BLANK` (never a chunk start). Higher is stronger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BLANK = -1
CONTINUATION = 0       # a piece of a long line after its first piece: cut only if forced

# Prose: headings (level 1 strongest), paragraphs, list items, plain lines.
_PARAGRAPH = 3
_ITEM = 2
_LINE = 1
_HEADING_BASE = 10     # level n -> 10 - n, so every heading beats a paragraph

# Code: what follows a blank line at the left margin is the strongest.
_TOP_DEF = 8           # blank line, column 0, a definition / decorator / comment
_TOP_BLOCK = 7         # blank line, column 0
_TOP_DEF_TIGHT = 6     # column 0 definition right after the previous block (C after "}")
_MEMBER_DEF = 5        # blank line, one indent level, a definition
_MEMBER_BLOCK = 4      # blank line, one indent level
_INNER_BLOCK = 3       # blank line, deeper
_MARGIN_LINE = 2       # column 0, no blank line
_CODE_LINE = 1

# Cuts at or above these strengths (a blank line or a heading before the chunk) are clean breaks:
# no overlap is carried across them. Overlap is for chunks that start in the middle of a block;
# carrying it everywhere would also make twice as many edits touch two chunks.
CLEAN_BREAK_CODE = _INNER_BLOCK
CLEAN_BREAK_PROSE = _PARAGRAPH

_LOOK = 200            # characters of a line the patterns look at

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_ITEM_START = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|\|)\s")
_DEFINITION = re.compile(
    r"^(?:(?:export|default|pub(?:\([^)]*\))?|public|private|protected|internal|static|async|"
    r"abstract|final|sealed|override|virtual|inline|extern|unsafe|open|data|partial|suspend|"
    r"synchronized|local|global)\s+)*"
    r"(?:def|class|function|fn|func|impl|struct|enum|trait|interface|type|typedef|module|mod|"
    r"package|namespace|object|record|union|macro_rules!|macro|sub|proc|defun|defmacro|defn|"
    r"fun|let|const|var|val|template|contract|describe|it|test)\b"
)
_ANNOTATION = re.compile(r"^(?:@\w|#\[|#!\[|\[\w)")
_COMMENT = re.compile(r"^(?:#|//|/\*|\*|--|;;|%|\"\"\"|''')")
_C_SIGNATURE = re.compile(r"^[A-Za-z_][\w:<>,*&\s\[\]]*\([^;]*\)\s*(?:const\s*)?(?:\{|:|$)")
_CLOSING = re.compile(r"^(?:[}\])]|end\b|fi\b|done\b|esac\b|else\b|elif\b|except\b|finally\b|catch\b)")


@dataclass(frozen=True)
class Layout:
    """Per-line strengths of a text, and the strength from which a cut is a clean break."""

    strengths: list[int]
    clean_break: int


def layout(lines: list[str], *, prose: bool) -> Layout:
    """Strength of every line of ``lines`` (prose rules for Markdown/text, code rules otherwise)."""
    if prose:
        return Layout(_prose_strengths(lines), CLEAN_BREAK_PROSE)
    return Layout(_code_strengths(lines), CLEAN_BREAK_CODE)


def _indent(line: str) -> int:
    """Width of the leading white space: a space counts 1, a tab 4."""
    blank = len(line) - len(line.lstrip(" \t"))
    return blank + 3 * line.count("\t", 0, blank)


def _code_strengths(lines: list[str]) -> list[int]:
    strengths: list[int] = []
    blank_before = True
    for line in lines:
        stripped = line.strip()
        if not stripped:
            strengths.append(BLANK)
            blank_before = True
            continue
        strengths.append(_code_strength(stripped, _indent(line), blank_before))
        blank_before = False
    return strengths


def _code_strength(line_text: str, indent: int, blank_before: bool) -> int:
    stripped = line_text[:_LOOK]     # the patterns need only the start; bounds regex work
    if _CLOSING.match(stripped):
        return CONTINUATION
    if indent == 0:
        definition = _is_definition(stripped) or bool(_C_SIGNATURE.match(stripped))
        if blank_before:
            return _TOP_DEF if definition else _TOP_BLOCK
        return _TOP_DEF_TIGHT if definition and not _COMMENT.match(stripped) else _MARGIN_LINE
    if not blank_before:
        return _CODE_LINE     # most lines: no pattern but the closing one is needed
    if indent <= 4:
        return _MEMBER_DEF if _is_definition(stripped) else _MEMBER_BLOCK
    return _INNER_BLOCK


def _is_definition(stripped: str) -> bool:
    return bool(_DEFINITION.match(stripped) or _ANNOTATION.match(stripped) or _COMMENT.match(stripped))


def _prose_strengths(lines: list[str]) -> list[int]:
    strengths: list[int] = []
    blank_before = True
    in_fence = False
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            strengths.append(BLANK)
            blank_before = True
            continue
        fence = _FENCE.match(line)
        if fence:
            strengths.append(_PARAGRAPH if blank_before else _LINE)
            # "```lang" always opens: a deleted fence line then upsets only up to the next one.
            in_fence = bool(line[fence.end():].strip()) or not in_fence
        else:
            next_line = lines[index + 1] if index + 1 < len(lines) else ""
            strengths.append(_prose_strength(line, next_line, blank_before, headings=not in_fence))
        blank_before = False
    return strengths


def _prose_strength(line: str, next_line: str, blank_before: bool, *, headings: bool) -> int:
    """Inside a fenced code block (``headings`` false) a ``#`` line is a comment, not a heading;
    every other rule is the same inside and outside, so a lost fence changes little."""
    line, next_line = line[:_LOOK], next_line[:_LOOK]
    heading = _HEADING.match(line) if headings else None
    if heading:
        return _HEADING_BASE - len(heading.group(1))
    setext = _SETEXT.match(next_line) if headings else None
    if setext and blank_before and not _SETEXT.match(line):
        return _HEADING_BASE - (1 if setext.group(1)[0] == "=" else 2)
    if blank_before:
        return _PARAGRAPH
    if _ITEM_START.match(line):
        return _ITEM
    if _SETEXT.match(line):
        return CONTINUATION      # the underline of a setext heading
    return _LINE
