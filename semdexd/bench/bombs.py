"""`semdexd bench bombs [--json] [--scale S] [--kinds a,b]`: peak memory per "bomb" file kind.

Generates small-on-disk files that expand enormously (a DOCX whose XML inflates to hundreds of
MB, a PDF with a huge compressed content stream, one with thousands of pages, a 9 MB one-line
text file, 9 MB of HTML, ...) and runs the daemon's own prepare path (extract + chunk, with the
configured caps and the real tokenizer) on each in a child process, guarded by a watchdog that
kills the child past ``--kill-mb`` resident (so a regression cannot take the machine down).
Prints, per bomb: size on disk, outcome, chunks, the child's peak RSS (``ru_maxrss``) and the
RSS of the same child after imports (the baseline), so the bomb's own cost is the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from semdexd.config import Config

_WORDS = ["lighthouse", "keeper", "harbour", "storm", "lantern", "signal", "coast", "rock", "tide", "beacon", "night", "ship", "north", "wind", "granite", "tower", "glass", "mirror", "oil", "wick", "ledger", "supply", "boat", "rope", "bell", "fog"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


# ---------------------------------------------------------------- generators

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_bomb(path: Path, paragraphs: int, paragraph_bytes: int) -> Path:
    """A valid DOCX whose document.xml holds ``paragraphs`` paragraphs of ``paragraph_bytes``
    characters each (repetitive text: it compresses about 1000:1)."""
    unit = "storm lantern "
    body = (unit * (paragraph_bytes // len(unit) + 1))[:paragraph_bytes]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _RELS)
        with zf.open("word/document.xml", "w", force_zip64=True) as out:
            out.write(f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}"><w:body>'.encode())
            for _ in range(paragraphs):
                out.write(f"<w:p><w:r><w:t>{body}</w:t></w:r></w:p>".encode())
            out.write(b"</w:body></w:document>")
    return path


def _pdf(objects: list[bytes]) -> bytes:
    """Objects 1..n (1 = catalog) -> a PDF with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(data: bytes) -> bytes:
    packed = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream"


def pdf_stream_bomb(path: Path, text_bytes: int) -> Path:
    """One page whose (deflated) content stream shows ``text_bytes`` of text, line by line."""
    line = b"BT /F1 10 Tf 20 700 Td (" + b"storm lantern " * 6 + b") Tj ET\n"
    content = line * (text_bytes // 84 + 1)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> >>"),
               _stream(content),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    path.write_bytes(_pdf(objects))
    return path


def pdf_pages_bomb(path: Path, pages: int) -> Path:
    """``pages`` pages sharing one content stream of a few hundred characters."""
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    text = b"".join(b"BT /F1 10 Tf 20 %d Td (storm lantern beacon tide rock %d) Tj ET\n" % (700 - 12 * i, i)
                    for i in range(8))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
               _stream(text),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    objects += [(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
                 b"/Resources << /Font << /F1 4 0 R >> >> >>")] * pages
    path.write_bytes(_pdf(objects))
    return path


def text_one_line(path: Path, size: int, seed: int = 1) -> Path:
    """``size`` bytes of words and sentences on a single line (no newline at all)."""
    rng = random.Random(seed)
    parts, total = [], 0
    while total < size:
        sentence = _words(rng, 12).capitalize() + ". "
        parts.append(sentence)
        total += len(sentence)
    path.write_text("".join(parts)[:size])
    return path


def text_no_spaces(path: Path, size: int) -> Path:
    """``size`` bytes of base64-like characters on one line: no word or sentence to cut at."""
    rng = random.Random(2)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    block = "".join(rng.choice(alphabet) for _ in range(65536))
    path.write_text((block * (size // len(block) + 1))[:size])
    return path


def text_lines(path: Path, size: int) -> Path:
    """``size`` bytes of ordinary prose lines (many chunks)."""
    rng = random.Random(3)
    lines, total = [], 0
    while total < size:
        line = _words(rng, 14).capitalize() + "."
        lines.append(line)
        total += len(line) + 1
    path.write_text("\n".join(lines)[:size])
    return path


def text_latin1(path: Path, size: int) -> Path:
    """``size`` bytes of Windows-1252 prose (not UTF-8: the charset detector runs on all of it)."""
    rng = random.Random(5)
    words = [w.replace("o", "\u00f6").replace("a", "\u00e4") for w in _WORDS]
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(14)) + "."
        lines.append(line)
        total += len(line) + 1
    path.write_bytes("\n".join(lines).encode("cp1252")[:size])
    return path


def html_bomb(path: Path, size: int) -> Path:
    """``size`` bytes of HTML: deep nesting and many tiny blocks."""
    rng = random.Random(4)
    depth = 2000
    parts = ["<html><body>", "<div>" * depth]
    total = 0
    while total < size:
        part = f"<p><b>{_words(rng, 6)}</b> <i>{_words(rng, 6)}</i></p><td>x</td>"
        parts.append(part)
        total += len(part)
    parts.append("</div>" * depth + "</body></html>")
    path.write_text("".join(parts)[:size])
    return path


@dataclass(frozen=True)
class Bomb:
    name: str
    file: str
    make: Callable[[Path, float], Path]


def _mb(scale: float, mb: float) -> int:
    return max(1024, int(mb * scale * (1 << 20)))


BOMBS: tuple[Bomb, ...] = (
    Bomb("docx_xml_512mb", "bomb.docx", lambda p, s: docx_bomb(p, max(1, int(512 * s)), 1 << 20)),
    Bomb("pdf_stream_70mb", "stream.pdf", lambda p, s: pdf_stream_bomb(p, _mb(s, 70))),
    Bomb("pdf_20k_pages", "pages.pdf", lambda p, s: pdf_pages_bomb(p, max(10, int(20000 * s)))),
    Bomb("txt_one_line_9mb", "oneline.txt", lambda p, s: text_one_line(p, _mb(s, 9))),
    Bomb("txt_no_spaces_9mb", "base64.txt", lambda p, s: text_no_spaces(p, _mb(s, 9))),
    Bomb("txt_lines_9mb", "lines.txt", lambda p, s: text_lines(p, _mb(s, 9))),
    Bomb("txt_cp1252_9mb", "latin.txt", lambda p, s: text_latin1(p, _mb(s, 9))),
    Bomb("html_9mb", "page.html", lambda p, s: html_bomb(p, _mb(s, 9))),
)


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Outcome:
    bomb: str
    disk_kb: int
    status: str
    reason: str
    chunks: int
    text_mb: float
    baseline_rss_mb: float
    peak_rss_mb: float
    killed: bool
    seconds: float


def run_guarded(cmd: list[str], kill_mb: int, timeout: float) -> tuple[int, str, float, bool]:
    """Run ``cmd``; kill it once its RSS passes ``kill_mb`` (a watchdog thread reading /proc)
    or after ``timeout`` s. Returns (exit status, stdout, peak RSS MB from wait4, killed)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed = threading.Event()
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done.wait(0.01):
            if _rss_mb(proc.pid) > kill_mb or time.monotonic() > deadline:
                killed.set()
                proc.kill()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out, usage.ru_maxrss / 1024, killed.is_set()


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        return 0.0


def measure(path: Path, bomb: str, cfg: Config, tokenizer: Path, prefix: str, max_tokens: int,
            kill_mb: int, timeout: float) -> Outcome:
    """Extract and chunk ``path`` in a guarded child; its outcome and peak RSS."""
    cmd = [sys.executable, "-m", "semdexd.bench.bombs", "--child", str(path), str(tokenizer), prefix,
           str(max_tokens), json.dumps({"target": cfg.chunk.target_tokens, "overlap": cfg.chunk.overlap_tokens,
                                        **_limits(cfg)})]
    started = time.monotonic()
    code, out, peak, killed = run_guarded(cmd, kill_mb, timeout)
    seconds = time.monotonic() - started
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {"status": "killed" if killed else f"exit {code}", "reason": "", "chunks": 0,
                  "text_mb": 0.0, "baseline_rss_mb": 0.0}
    return Outcome(bomb, path.stat().st_size // 1024, result["status"], result["reason"][:70],
                   result["chunks"], result["text_mb"], result["baseline_rss_mb"], round(peak, 1),
                   killed, round(seconds, 2))


def _limits(cfg: Config) -> dict[str, Any]:
    index = cfg.index
    return {name: getattr(index, name) for name in ("max_file_mb", "max_text_mb", "max_chunks_per_file")
            if hasattr(index, name)}


def _child(argv: list[str]) -> int:
    """In the guarded child: import, note the RSS, then extract + chunk one file."""
    path, tokenizer_file, prefix, max_tokens, raw = argv
    limits = json.loads(raw)
    from semdexd.chunk import cap_chunks, chunk_budget_chars, chunk_text
    from semdexd.embed.model import load_tokenizer
    from semdexd.embed.text import clean
    from semdexd.extract import extract
    from semdexd.extract.result import cap_text

    tokenizer = load_tokenizer(Path(tokenizer_file), None)

    def count(texts: Any) -> list[int]:
        return [len(e.ids) for e in tokenizer.encode_batch([prefix + clean(t) for t in texts])] if texts else []

    count(["warm up the tokenizer"])
    baseline = _rss_mb(os.getpid())
    ex = _extract(extract, Path(path), limits)
    cap = int(limits.get("max_chunks_per_file", 1 << 30))
    text = cap_text(ex.text, chunk_budget_chars(cap, limits["target"]))
    chunks = chunk_text(text.text, file_type=ex.file_type, count_tokens=count,
                        target_tokens=limits["target"], max_tokens=int(max_tokens),
                        overlap_tokens=limits["overlap"]) if ex.has_text else []
    chunks, reason = cap_chunks(chunks, cap, ex.reason, cut=bool(text.reason))
    print(json.dumps({"status": ex.kind.status, "reason": reason, "chunks": len(chunks),
                      "text_mb": round(len(ex.text) / (1 << 20), 2), "baseline_rss_mb": round(baseline, 1)}))
    return 0


def _extract(extract: Any, path: Path, limits: dict[str, Any]) -> Any:
    max_bytes = int(limits["max_file_mb"] * (1 << 20))
    if "max_text_mb" in limits:
        return extract(path, max_bytes=max_bytes, max_chars=int(limits["max_text_mb"] * (1 << 20)))
    return extract(path, max_bytes=max_bytes)


def main(argv: list[str], cfg: Config) -> int:
    parser = argparse.ArgumentParser(prog="semdexd bench bombs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every bomb by this factor")
    parser.add_argument("--kinds", default="", help="comma-separated bomb names (default: all)")
    parser.add_argument("--kill-mb", type=int, default=3000, help="watchdog: kill a child above this RSS")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    from semdexd.embed.model import prepare_model

    info = prepare_model(cfg)
    chosen = [b for b in BOMBS if not args.kinds or b.name in args.kinds.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="semdex-bombs-") as tmp:
        for bomb in chosen:
            path = bomb.make(Path(tmp) / bomb.file, args.scale)
            results.append(measure(path, bomb.name, cfg, info.tokenizer_file, info.passage_prefix,
                                   info.max_tokens, args.kill_mb, args.timeout))
            path.unlink()
            if not args.json:
                r = results[-1]
                print(f"{r.bomb:18} {r.disk_kb:>7} KB  peak {r.peak_rss_mb:7.1f} MB (base {r.baseline_rss_mb:5.1f})"
                      f"  {r.seconds:6.1f} s  chunks {r.chunks:>6}  text {r.text_mb:6.2f} MB  "
                      f"{'KILLED ' if r.killed else ''}{r.status}: {r.reason}", flush=True)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2:]))
    sys.exit(2)
