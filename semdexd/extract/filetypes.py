"""File types: the short type name used for filters, and what is known to be binary.

Pure functions of a path or of leading bytes; nothing here reads a file.
"""

from __future__ import annotations

from pathlib import Path

# Extensions whose short type is not the extension itself.
_ALIASES: dict[str, str] = {
    "pyi": "py", "pyw": "py", "pyx": "py",
    "markdown": "md", "mdown": "md", "mkd": "md", "mdx": "md",
    "htm": "html", "xhtml": "html", "shtml": "html",
    "text": "txt", "log": "txt",
    "mjs": "js", "cjs": "js", "jsx": "js", "tsx": "ts", "mts": "ts", "cts": "ts",
    "yml": "yaml", "h": "c",
    "cc": "cpp", "cxx": "cpp", "c++": "cpp", "hpp": "cpp", "hh": "cpp", "hxx": "cpp",
    "bash": "sh", "zsh": "sh", "ksh": "sh", "fish": "sh",
    "kts": "kt", "rake": "rb", "gemspec": "rb", "pm": "pl",
}

# Whole file names that say their type.
_NAMES: dict[str, str] = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile",
    "cmakelists.txt": "cmake", "rakefile": "rb", "gemfile": "rb", "justfile": "make",
    "readme": "txt", "license": "txt", "copying": "txt", "authors": "txt",
}

# Types that are prose (paragraphs and headings) rather than code.
PROSE_TYPES: frozenset[str] = frozenset(
    {"md", "txt", "rst", "html", "pdf", "docx", "org", "adoc", "tex", "rtf"}
)

BINARY_EXTENSIONS: frozenset[str] = frozenset("""
    png jpg jpeg gif bmp ico icns webp tif tiff psd heic heif avif raw cr2 nef xcf
    zip gz tgz bz2 tbz xz txz 7z rar zst lz4 lzma tar jar war ear apk ipa whl egg cab deb rpm
    exe dll so dylib o a obj lib class pyc pyo pyd wasm bin elc beam
    sqlite sqlite3 db mdb accdb dbf
    mp3 mp4 m4a m4v wav flac ogg oga opus aac wma mkv avi mov webm wmv flv mpg mpeg 3gp mid midi
    ttf otf woff woff2 eot
    iso dmg img vmdk qcow2 vdi
    npy npz pkl pickle parquet feather arrow h5 hdf5 onnx pt pth ckpt safetensors tflite pb
    ds_store swp swo
""".split())

# Office formats we do not extract text from (named in the reason instead of "binary").
UNSUPPORTED_DOCUMENTS: frozenset[str] = frozenset(
    {"doc", "xls", "xlsx", "xlsm", "ppt", "pptx", "odt", "ods", "odp", "pages", "numbers", "key", "epub"}
)

# Leading bytes of common binary formats (PDF and ZIP/DOCX are handled by the caller first).
# Only signatures with a non-text byte: an all-ASCII one ("RIFF", "ID3") could start a text file,
# and those formats are caught by the NUL/control-byte test anyway.
_SIGNATURES: tuple[bytes, ...] = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*",
    b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18",
    b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\x00asm",
    b"SQLite format 3\x00", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    b"\x1a\x45\xdf\xa3", b"\x93NUMPY",
)

PDF_SIGNATURE = b"%PDF-"
ZIP_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def extension(path: Path) -> str:
    """The lower-case extension without the dot (``"tar.gz"`` gives ``"gz"``), or ``""``."""
    suffix = path.suffix
    return suffix[1:].lower() if len(suffix) > 1 else ""


def file_type(path: Path) -> str:
    """The short type of ``path`` for filters: ``"py"``, ``"md"``, ``"html"``, ``"pdf"``, ...

    Known aliases are folded (``.htm`` -> ``"html"``, ``.tsx`` -> ``"ts"``); other extensions are
    returned as they are (lower case); a file without extension is ``"txt"`` unless its name is
    known (``Makefile`` -> ``"make"``).
    """
    name = path.name.lower()
    if name in _NAMES:
        return _NAMES[name]
    ext = extension(path)
    if not ext or name.startswith(".") and name.count(".") == 1:
        return "txt"
    return _ALIASES.get(ext, ext)


def is_binary_extension(path: Path) -> bool:
    """True when the extension alone says the file is binary (images, archives, executables...)."""
    return extension(path) in BINARY_EXTENSIONS


def has_binary_signature(data: bytes) -> bool:
    """True when ``data`` starts with the magic bytes of a known binary format."""
    return data.startswith(_SIGNATURES)
