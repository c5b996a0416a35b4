"""Labelled dev sets for `semdexd bench quality`, all from text nobody on this project wrote.

* ``docstrings``: stdlib functions found from the first sentence of their docstring, in modules
  copied with every docstring blanked (see `quality_set`): meaning without shared words.
* ``identifiers``: the same blanked modules, asked for a function by its identifier-like name
  (``_guess_quote_and_delimiter``): where is X defined, among the places that call it.
* ``docs``: the long descriptions (Markdown or reStructuredText) shipped in the METADATA of
  packages installed beside semdex, asked by a section's heading with every heading line blanked:
  documentation navigation.
* ``multilingual``: translated messages and GNOME setting descriptions from Debian's gettext
  catalogs, in English, German, French, Spanish, Japanese and Chinese, asked in another language
  (the same message translated) or by the setting's summary (same language or another), one entry
  a file: made once by ``scripts/make_multilingual_set.py``, corpus committed in
  ``multilingual.json``.
* ``unanswerable``: questions about things none of these files is about (written for this set),
  to measure the score cutoff.

Each labelled query belongs to the ``tune`` or the ``test`` half by a hash of its set and id
(deterministic; committed in ``devsets.json`` with the queries). Tune on ``tune`` only.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from semdexd.bench import quality_set

SET_FILE = Path(__file__).with_name("devsets.json")
MULTILINGUAL_FILE = Path(__file__).with_name("multilingual.json")
LABELLED = ("docstrings", "identifiers", "docs", "multilingual")
DOC_PACKAGES = ("tqdm", "watchdog", "python-dotenv", "psutil", "rich", "typer", "pathspec",
                "charset-normalizer", "orjson", "pytest-timeout", "huggingface-hub", "annotated-types",
                "regex", "yarl")
IDENT_PER_MODULE = 3
DOCS_PER_PACKAGE = 12
_IDENT = re.compile(r"^_?[a-z0-9]+(_[a-z0-9]+)+$|^_?[a-z]+[A-Z]\w*$")
_MD_HEADING = re.compile(r"^(#{1,4})\s+(.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`*+#])\1{2,}\s*$")


@dataclass(frozen=True)
class Item:
    """One labelled query: ``source`` names the corpus file, lines are 1-based inclusive."""

    set: str
    id: str
    query: str
    source: str
    start_line: int
    end_line: int
    split: str


def split_of(set_name: str, ident: str) -> str:
    """``tune`` or ``test``, by a stable hash (about half each)."""
    return "tune" if hashlib.sha256(f"{set_name}:{ident}".encode()).digest()[0] % 2 == 0 else "test"


def _item(set_name: str, ident: str, query: str, source: str, start: int, end: int) -> Item:
    return Item(set_name, ident, query, source, start, end, split_of(set_name, ident))


# ---------------------------------------------------------------- code sets (stdlib)


def docstring_items(modules: tuple[str, ...]) -> list[Item]:
    """The committed docstring set (quality_set.json) for ``modules``, with line labels."""
    items = []
    for q in quality_set.load_set(False):
        if q.module not in modules:
            continue
        source = (quality_set.stdlib() / q.module).read_text(encoding="utf-8")
        fn = dict(quality_set._functions(ast.parse(source))).get(q.qualname)
        if fn is not None:
            items.append(_item("docstrings", f"{q.module}:{q.qualname}", q.text, _code_file(q.module),
                               fn.lineno, fn.end_lineno or fn.lineno))
    return items


def identifier_items(modules: tuple[str, ...]) -> list[Item]:
    """IDENT_PER_MODULE functions per module with an identifier-like name defined once there."""
    items = []
    for module in modules:
        tree = ast.parse((quality_set.stdlib() / module).read_text(encoding="utf-8"))
        fns = quality_set._functions(tree)
        names = [fn.name for _, fn in fns]
        picked = [(q, fn) for q, fn in fns if _IDENT.match(fn.name) and len(fn.name) >= 10
                  and not fn.name.startswith("__") and names.count(fn.name) == 1]
        picked.sort(key=lambda p: hashlib.sha256(p[0].encode()).hexdigest())
        for qualname, fn in picked[:IDENT_PER_MODULE]:
            items.append(_item("identifiers", f"{module}:{qualname}", fn.name, _code_file(module),
                               fn.lineno, fn.end_lineno or fn.lineno))
    return items


def _code_file(module: str) -> str:
    return "code/" + module.replace("/", "__")


# ---------------------------------------------------------------- docs set (package METADATA)


def package_description(package: str) -> str | None:
    """The long description in ``package``'s installed METADATA, or None."""
    try:
        text = metadata.distribution(package).read_text("METADATA")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    _, _, body = text.partition("\n\n")
    return body or None


def headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line index, last line index, title) of each Markdown or rst heading (fenced code
    blocks skipped); rst headings span the title and its underline (and an overline)."""
    out: list[tuple[int, int, str]] = []
    fenced = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = _MD_HEADING.match(line)
        if m:
            out.append((i, i, m.group(2)))
        elif (i + 1 < len(lines) and line.strip() and not _RST_UNDERLINE.match(line)
              and _RST_UNDERLINE.match(lines[i + 1]) and len(lines[i + 1].rstrip()) >= len(line.rstrip())):
            first = i - 1 if i > 0 and _RST_UNDERLINE.match(lines[i - 1]) else i
            out.append((first, i + 1, line.strip()))
    return out


def _clean_title(title: str) -> str:
    return " ".join(re.findall(r"[\w.\-]+", title.replace("`", "")))


def doc_corpus_and_items() -> tuple[dict[str, str], list[Item]]:
    """{corpus file: text with heading lines blanked}, and one item per section whose title has
    at least two words and whose body at least two non-blank lines."""
    files: dict[str, str] = {}
    items: list[Item] = []
    for package in DOC_PACKAGES:
        body = package_description(package)
        if not body:
            continue
        lines = body.split("\n")
        found = headings(lines)
        name = f"docs/{package}.txt"
        blanked = list(lines)
        for first, last, _ in found:
            for i in range(first, last + 1):
                blanked[i] = ""
        files[name] = "\n".join(blanked)
        mine = []
        for n, (_first, last, title) in enumerate(found):
            end = found[n + 1][0] - 1 if n + 1 < len(found) else len(lines) - 1
            section = [ln for ln in lines[last + 1:end + 1] if ln.strip()]
            query = _clean_title(title)
            if len(re.findall(r"[^\W\d_]{3,}", query)) >= 2 and len(section) >= 2:
                mine.append(_item("docs", f"{package}:{query}", query, name, last + 2, end + 1))
        mine.sort(key=lambda i: hashlib.sha256(i.id.encode()).hexdigest())
        items += mine[:DOCS_PER_PACKAGE]
    return files, items


# ---------------------------------------------------------------- multilingual (committed corpus)


def multilingual_corpus() -> dict[str, str]:
    """{corpus file: text} of the multilingual set: one entry a file, on one line."""
    files: dict[str, str] = json.loads(MULTILINGUAL_FILE.read_text(encoding="utf-8"))["files"]
    return {name: text + "\n" for name, text in files.items()}


def languages(item: Item) -> tuple[str, str]:
    """(query language, document language) of a multilingual item (its id ends ``:<q>><d>``)."""
    query, _, doc = item.id.rpartition(":")[2].partition(">")
    return query, doc


# ---------------------------------------------------------------- unanswerable

UNANSWERABLE = (
    "recipe for sourdough bread with a long cold fermentation",
    "who won the football world cup in 1998",
    "symptoms of vitamin D deficiency in adults",
    "how to replace the inner tube of a bicycle tyre",
    "best time of year to plant tomatoes outdoors",
    "the plot of Tolstoy's War and Peace",
    "how do whales sleep without drowning",
    "exchange rate of the Swiss franc against the yen",
    "knitting pattern for a wool scarf",
    "how to descale an espresso machine",
    "migration routes of arctic terns",
    "the causes of the French Revolution",
    "train timetable from Lyon to Marseille",
    "how to treat a sprained ankle",
    "what wine goes with grilled salmon",
    "the rules of cricket for beginners",
    "how to repot an orchid",
    "the life cycle of a monarch butterfly",
    "how tall is Mount Kilimanjaro",
    "learning to play the violin as an adult",
    "wedding speech ideas for the best man",
    "how to remove red wine stains from a carpet",
    "chemotherapy side effects and nausea",
    "photosynthesis in desert cacti",
    "tax deductions for a home office",
    "how to train a puppy to walk on a leash",
    "volcanic eruptions in Iceland in the last century",
    "a good stretching routine for runners",
    "history of the Byzantine empire",
    "how to make fresh pasta without a machine",
    "the orbit of Jupiter's moon Europa",
    "symptoms of a heart attack in women",
    "how to tile a bathroom floor",
    "the best beaches in Portugal",
)


# ---------------------------------------------------------------- the committed file


def build(modules: tuple[str, ...] = quality_set.MODULES) -> dict[str, list[dict[str, object]]]:
    """The committed file rebuilt from this machine (the multilingual set is kept as it is: its
    script rebuilds it)."""
    _, docs = doc_corpus_and_items()
    kept = json.loads(SET_FILE.read_text()).get("multilingual", []) if SET_FILE.exists() else []
    return {"docstrings": [i.__dict__ for i in docstring_items(modules)],
            "identifiers": [i.__dict__ for i in identifier_items(modules)],
            "docs": [i.__dict__ for i in docs],
            "multilingual": kept,
            "unanswerable": [{"query": q} for q in UNANSWERABLE]}


def load(quick: bool) -> tuple[list[Item], list[str]]:
    """(labelled items, unanswerable queries) from the committed file; ``quick`` keeps the code
    sets to `quality_set.QUICK_MODULES` (the others whole)."""
    data = json.loads(SET_FILE.read_text())
    quick_files = {_code_file(m) for m in quality_set.QUICK_MODULES}
    items = [Item(**d) for name in LABELLED for d in data.get(name, [])]
    if quick:
        items = [i for i in items if i.set in ("docs", "multilingual") or i.source in quick_files]
    return items, [d["query"] for d in data["unanswerable"]]


def materialise(items: list[Item], corpus: Path) -> list[Item]:
    """Write the corpus files ``items`` need under ``corpus`` (unchanged files are not rewritten,
    so a persistent index stays valid); items whose source text moved are dropped."""
    docs, current = doc_corpus_and_items()
    texts: dict[str, str] = dict(docs)
    for source in {i.source for i in items if i.source.startswith("code/")}:
        module = source[len("code/"):].replace("__", "/")
        texts[source] = quality_set.strip_docstrings((quality_set.stdlib() / module).read_text(encoding="utf-8"))
    if any(i.set == "multilingual" for i in items):
        texts.update(multilingual_corpus())
    for name, text in texts.items():
        target = corpus / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    # A rebuilt multilingual set leaves no stale entries behind in a persistent corpus.
    if any(name.startswith("multilingual/") for name in texts):
        for stale in (corpus / "multilingual").rglob("*"):
            if stale.is_file() and stale.relative_to(corpus).as_posix() not in texts:
                stale.unlink()
    valid_docs = {(i.id, i.start_line, i.end_line) for i in current}
    return [i for i in items if i.set != "docs" or (i.id, i.start_line, i.end_line) in valid_docs]


if __name__ == "__main__":  # python -m semdexd.bench.devsets: rebuild the committed file
    data = build()
    SET_FILE.write_text(json.dumps(data, indent=1) + "\n")
    print({k: len(v) for k, v in data.items()}, "->", SET_FILE)
