"""extract(): real files of every kind in a temp dir -> text, or a skip/fail reason; never raises."""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from semdexd.extract import Extraction, extract, file_type

MB = 1 << 20


def _pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF (Helvetica, one text line per input line) written by hand."""
    objects: dict[int, bytes] = {}
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    for i, page in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in page.split("\n") if page else []:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        stream = "\n".join([*ops, "ET"]).encode("latin-1")
        objects[4 + 2 * i] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i))
        objects[5 + 2 * i] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def _encrypted_pdf(plain: bytes, user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _x(path: Path, max_bytes: int = 10 * MB) -> Extraction:
    result = extract(path, max_bytes=max_bytes)
    assert isinstance(result, Extraction)
    assert (result.kind == "indexed") == (result.reason == ""), result
    assert result.reason.startswith(result.kind) or result.kind == "indexed", result
    return result


# ---------------------------------------------------------------- text and encodings


def test_utf8_code_is_returned_as_is_with_hash_and_type(tmp_path: Path) -> None:
    source = Path(os.__file__).read_bytes()
    path = tmp_path / "os_copy.py"
    path.write_bytes(source)
    result = _x(path)
    assert result.kind == "indexed" and result.file_type == "py"
    assert result.text == source.decode("utf-8")
    assert result.content_hash == hashlib.sha256(source).hexdigest()


@pytest.mark.parametrize("encoding,bom", [
    ("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
    ("utf-32-le", codecs.BOM_UTF32_LE), ("utf-32-be", codecs.BOM_UTF32_BE),
])
def test_unicode_with_bom(tmp_path: Path, encoding: str, bom: bytes) -> None:
    text = "Grüße, 世界! ☃ naïve café\nsecond line\n"
    path = tmp_path / "note.txt"
    path.write_bytes(bom + text.encode(encoding))
    assert _x(path).text == text


def test_newlines_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "dos.md"
    path.write_bytes(b"# Title\r\n\r\nwindows line\r\nold mac line\rlast")
    assert _x(path).text == "# Title\n\nwindows line\nold mac line\nlast"


@pytest.mark.parametrize("encoding,text", [
    ("cp1252", "Le café est très chaud; où êtes-vous? Naïve élève à Noël.\n" * 30),
    ("latin-1", "Größe und Übermaß: schön für Bäcker und Käufer.\n" * 30),
    ("cp1251", "Привет, мир! Это русский текст для проверки кодировки.\n" * 30),
    ("shift_jis", "これは日本語のテキストです。検索エンジンのテスト。\n" * 30),
])
def test_legacy_encodings_are_detected(tmp_path: Path, encoding: str, text: str) -> None:
    path = tmp_path / "legacy.txt"
    path.write_bytes(text.encode(encoding))
    assert _x(path).text == text


def test_latin1_fallback_for_mostly_ascii_text(tmp_path: Path) -> None:
    path = tmp_path / "mostly.txt"
    path.write_bytes(b"plain ascii configuration line\n" * 40 + b"price: 10\xa4 \xb5s\n")
    result = _x(path)
    assert result.kind == "indexed"
    assert result.text.startswith("plain ascii configuration line\n")


def test_undecodable_high_bytes_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "noise.txt"
    path.write_bytes(bytes((i * 7919) % 128 + 128 for i in range(6000)))
    result = _x(path)
    assert result.kind == "skipped" and "undecodable" in result.reason
    assert result.content_hash


# ---------------------------------------------------------------- binary, empty, size


def test_binary_by_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"looks like text\x00\x01\x02 but is not")
    assert _x(path).reason == "skipped: binary"


def test_binary_by_signature_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "python-interpreter"
    shutil.copyfile(sys.executable if Path(sys.executable).stat().st_size < 50 * MB else "/bin/ls", path)
    assert _x(path, max_bytes=100 * MB).reason == "skipped: binary"


def test_binary_by_extension_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_text("not really a png")
    result = _x(path)
    assert (result.kind, result.reason, result.file_type) == ("skipped", "skipped: binary", "png")
    assert result.content_hash == ""


def test_sqlite_database_is_binary(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "cache"
    with sqlite3.connect(path) as db:
        db.execute("create table t (x text)")
        db.execute("insert into t values ('hello')")
    db.close()
    assert _x(path).reason == "skipped: binary"


@pytest.mark.parametrize("content", [b"", b"   \n\n\t  \r\n"])
def test_empty_and_blank_files_are_skipped(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(content)
    result = _x(path)
    assert (result.kind, result.reason) == ("skipped", "skipped: empty")
    assert result.content_hash == hashlib.sha256(content).hexdigest()


def test_larger_than_max_bytes_is_skipped_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"x" * (MB + 1))
    result = _x(path, max_bytes=MB)
    assert (result.kind, result.reason) == ("skipped", "skipped: larger than 1 MB")
    assert result.content_hash == ""
    assert _x(path, max_bytes=2 * MB).kind == "indexed"


def test_unsupported_office_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04whatever")
    assert _x(path).reason == "skipped: unsupported document format (xlsx)"


# ---------------------------------------------------------------- special files and errors


def test_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.txt"
    os.mkfifo(path)
    assert _x(path).reason == "skipped: not a regular file (fifo)"


def test_unix_socket_is_skipped(tmp_path: Path) -> None:
    path = Path(os.path.relpath(tmp_path / "s.sock"))
    if len(str(path)) > 100:
        path = Path("/tmp") / f"semdex-extract-{os.getpid()}.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        assert _x(path).reason == "skipped: not a regular file (socket)"
    finally:
        server.close()
        path.unlink(missing_ok=True)


def test_device_and_directory_are_skipped(tmp_path: Path) -> None:
    assert _x(Path("/dev/null")).reason == "skipped: not a regular file (device)"
    assert _x(tmp_path).reason == "skipped: not a regular file (directory)"


def test_symlink_loop_and_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    assert _x(tmp_path / "a.txt").reason == "skipped: symlink loop"
    assert _x(tmp_path / "dangling.md").reason == "skipped: broken symlink"


def test_symlink_to_a_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.md").write_text("# Real\n\ncontent\n")
    (tmp_path / "link.md").symlink_to(tmp_path / "real.md")
    assert _x(tmp_path / "link.md").text == "# Real\n\ncontent\n"


def test_vanished_file_fails(tmp_path: Path) -> None:
    result = _x(tmp_path / "gone.py")
    assert (result.kind, result.reason) == ("failed", "failed: vanished before it could be read")
    assert _x(tmp_path / "gone.png").reason == "failed: vanished before it could be read"


def test_unreadable_file_fails_with_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.md"
    path.write_text("nobody may read this\n")
    path.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: drop the capabilities for the reading process
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    code = ("import sys; from pathlib import Path; from semdexd.extract import extract; "
            "print(extract(Path(sys.argv[1]), max_bytes=1 << 20).reason)")
    out = subprocess.run([*prefix, sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "failed: permission denied"


# ---------------------------------------------------------------- HTML


def test_html_visible_text_only(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_text(
        "<!doctype html><html><head><title>The   page</title><style>p { color: red }</style>"
        "<script>var hidden = '<p>no</p>';</script></head><body>"
        "<h1>Light &amp; houses</h1><p>First   paragraph,\nwrapped.</p><p>Second <b>bold</b>.</p>"
        "<ul><li>one</li><li>two</li></ul><noscript>enable js</noscript>"
        "<pre>  kept\n    indented</pre><table><tr><td>a</td><td>b</td></tr></table></body></html>")
    result = _x(path)
    assert result.file_type == "html"
    assert result.text == ("The page\n\n# Light & houses\n\nFirst paragraph, wrapped.\n\nSecond bold.\n\n"
                           "- one\n- two\n\n  kept\n    indented\n\na b\n")


def test_html_without_visible_text_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.html"
    path.write_text("<html><head><script>x()</script></head><body>  </body></html>")
    assert _x(path).reason == "skipped: empty"


# ---------------------------------------------------------------- PDF


def test_pdf_pages_joined_by_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(_pdf(["Lighthouse keepers (1890)", "Second page text"]))
    result = _x(path)
    assert (result.kind, result.file_type) == ("indexed", "pdf")
    assert result.text == "Lighthouse keepers (1890)\n\nSecond page text"
    assert result.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_pdf_detected_by_signature_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "download"
    path.write_bytes(_pdf(["Signature only"]))
    result = _x(path)
    assert (result.text, result.file_type) == ("Signature only", "pdf")


def test_encrypted_pdf_fails(tmp_path: Path) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_encrypted_pdf(_pdf(["secret text"]), user_password="pw"))
    result = _x(path)
    assert (result.kind, result.reason) == ("failed", "failed: PDF is encrypted")
    assert result.content_hash


def test_pdf_with_only_an_owner_password_is_read(tmp_path: Path) -> None:
    path = tmp_path / "restricted.pdf"
    path.write_bytes(_encrypted_pdf(_pdf(["readable by anyone"]), user_password=""))
    assert _x(path).text == "readable by anyone"


def test_pdf_without_text_layer_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(_pdf(["", ""]))
    assert _x(path).reason == "skipped: PDF has no text layer (scanned?)"


@pytest.mark.parametrize("content", [b"%PDF-1.4\ngarbage", b"not a pdf at all", b""])
def test_corrupt_pdf_fails_with_short_reason(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    result = _x(path)
    assert result.kind == "failed" and result.reason.startswith("failed: PDF could not be read")
    assert "\n" not in result.reason and len(result.reason) < 160


def test_truncated_pdf_fails(tmp_path: Path) -> None:
    path = tmp_path / "cut.pdf"
    path.write_bytes(_pdf(["some text here"] * 3)[:200])
    assert _x(path).kind in ("failed", "skipped")


# ---------------------------------------------------------------- DOCX


def test_docx_paragraphs_headings_and_tables_in_order(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Lighthouses", level=1)
    document.add_paragraph("A lighthouse is a tower that emits light.")
    document.add_heading("Keepers", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "name", "years"
    table.cell(1, 0).text, table.cell(1, 1).text = "Grace Darling", "1815–1842"
    document.add_paragraph("After the table.")
    path = tmp_path / "notes.docx"
    document.save(str(path))
    result = _x(path)
    assert (result.kind, result.file_type) == ("indexed", "docx")
    assert result.text == ("# Lighthouses\n\nA lighthouse is a tower that emits light.\n\n## Keepers\n\n"
                           "name | years\nGrace Darling | 1815–1842\n\nAfter the table.")


def test_docx_merged_cells_appear_once(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    table = document.add_table(rows=1, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "merged"
    table.cell(0, 2).text = "alone"
    path = tmp_path / "merged.docx"
    document.save(str(path))
    assert _x(path).text == "merged | alone"


@pytest.mark.parametrize("content,words", [
    (b"PK\x03\x04 definitely not a zip", "DOCX could not be read"),
    (b"plain text in a docx", "DOCX could not be read"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "DOCX is encrypted"),
])
def test_corrupt_or_encrypted_docx_fails(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(content)
    result = _x(path)
    assert result.kind == "failed" and words in result.reason, result


def test_zip_that_is_not_a_docx_fails(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "fake.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not an office document")
    result = _x(path)
    assert result.kind == "failed" and "DOCX could not be read" in result.reason


# ---------------------------------------------------------------- file types


@pytest.mark.parametrize("name,kind", [
    ("a.py", "py"), ("b.PYI", "py"), ("c.markdown", "md"), ("d.htm", "html"), ("e.tsx", "ts"),
    ("f.rs", "rs"), ("g.go", "go"), ("Makefile", "make"), ("Dockerfile", "dockerfile"),
    ("README", "txt"), ("notes", "txt"), (".bashrc", "txt"), ("x.tar.gz", "gz"), ("y.yml", "yaml"),
    ("z.h", "c"), ("w.hpp", "cpp"), ("doc.PDF", "pdf"), ("letter.docx", "docx"),
])
def test_file_type(name: str, kind: str) -> None:
    assert file_type(Path("/some/dir") / name) == kind
