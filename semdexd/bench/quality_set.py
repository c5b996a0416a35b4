"""The labelled retrieval set: Python standard-library functions, found from their own docstrings.

Corpus: a fixed list of pure-Python stdlib modules, copied with every docstring blanked out (line
numbers kept), so the code no longer contains the words of the query. Query: the first sentence
of a function's docstring (text this project did not write, describing behaviour in other words
than the code uses). Relevant: the function's lines in its module. Built from the interpreter's
own stdlib at run time; the committed ``quality_set.json`` pins which functions are asked.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

MODULES = (
    "argparse.py", "calendar.py", "csv.py", "difflib.py", "fractions.py", "ftplib.py", "gettext.py",
    "glob.py", "gzip.py", "heapq.py", "imaplib.py", "ipaddress.py", "mailbox.py", "netrc.py",
    "pprint.py", "shlex.py", "shutil.py", "smtplib.py", "statistics.py", "string.py", "tarfile.py",
    "textwrap.py", "queue.py", "urllib/parse.py", "http/cookiejar.py", "email/utils.py",
    "json/encoder.py", "configparser.py", "base64.py", "bisect.py", "colorsys.py", "filecmp.py",
    "fnmatch.py", "getopt.py", "hmac.py", "locale.py", "mimetypes.py", "operator.py", "optparse.py",
    "plistlib.py", "quopri.py", "random.py", "sched.py", "secrets.py", "socketserver.py", "tempfile.py",
    "timeit.py", "contextlib.py", "wave.py", "webbrowser.py",
)
QUICK_MODULES = MODULES[:12]
PER_MODULE = 6
SET_FILE = Path(__file__).with_name("quality_set.json")


@dataclass(frozen=True)
class Query:
    module: str
    qualname: str
    text: str


def stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return out


def first_sentence(doc: str) -> str:
    para = doc.strip().split("\n\n")[0]
    text = " ".join(para.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match.group(1) if match else text).strip()


def _docstring_nodes(tree: ast.Module) -> list[ast.Constant]:
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                nodes.append(body[0].value)
    return nodes


def strip_docstrings(source: str) -> str:
    """``source`` with every docstring replaced by ``...`` on blank lines (line numbers kept)."""
    tree = ast.parse(source)
    lines = source.split("\n")
    for node in _docstring_nodes(tree):
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines[first] = indent + "..."
        for i in range(first + 1, last + 1):
            lines[i] = ""
    return "\n".join(lines)


def candidate_queries(module: str) -> list[Query]:
    """Documented functions of ``module`` with a descriptive first sentence (>= 6 words)."""
    tree = ast.parse((stdlib() / module).read_text(encoding="utf-8"))
    out = []
    for qualname, fn in _functions(tree):
        doc = ast.get_docstring(fn)
        if not doc or fn.name.startswith("__"):
            continue
        text = first_sentence(doc)
        if len(text.split()) >= 6 and ">>>" not in text:
            out.append(Query(module, qualname, text))
    return out


def build_set() -> list[Query]:
    """PER_MODULE queries per module, chosen by a stable hash (reproducible, unbiased by order)."""
    chosen = []
    for module in MODULES:
        qs = sorted(candidate_queries(module), key=lambda q: hashlib.sha256(q.qualname.encode()).hexdigest())
        chosen += qs[:PER_MODULE]
    return chosen


def save_set(queries: list[Query]) -> None:
    SET_FILE.write_text(json.dumps([q.__dict__ for q in queries], indent=1) + "\n")


def load_set(quick: bool = False) -> list[Query]:
    queries = [Query(**d) for d in json.loads(SET_FILE.read_text())]
    return [q for q in queries if q.module in QUICK_MODULES] if quick else queries


if __name__ == "__main__":  # python -m semdexd.bench.quality_set: rebuild the committed set
    qs = build_set()
    save_set(qs)
    print(f"{len(qs)} queries from {len(MODULES)} modules -> {SET_FILE}")
