"""The live indexer end to end, in process: real model, real worker processes, real Chroma, real files.

After every change the index must equal the folder: every indexable file recorded with its current
content hash, nothing else recorded, and the store holding exactly the manifest's chunk ids.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from semdexd.app.handlers import Api
from semdexd.app.service import Service
from tests.support import Instance, running_service, sha256_file, wait_for

PARA = ("Paragraph {n} of the notes: the quick brown fox number {n} jumps over the lazy dog while "
        "the daemon keeps the index fresh, chunk by chunk, and never loses what it stored before.")


def paragraphs(count: int, tag: str = "") -> str:
    return "\n\n".join(PARA.format(n=f"{tag}{i}") for i in range(count)) + "\n"


def expected(folder: Path) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in folder.rglob("*")
            if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def recorded(svc: Service) -> dict[str, str]:
    out = {}
    for path in svc.manifest.all_paths():
        row = svc.manifest.file(path)
        if row is not None and row.kind.status == "indexed":
            out[path] = row.hash
    return out


def matches(svc: Service, folder: Path) -> bool:
    return svc.state() == "idle" and recorded(svc) == expected(folder)


def settle(svc: Service, folder: Path, what: str = "index to match the folder") -> None:
    wait_for(lambda: matches(svc, folder), timeout=120, what=what)
    assert svc.store.all_ids() == svc.manifest.all_chunk_ids(), "store and manifest disagree"


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Apples\n\n" + paragraphs(3, "a"))
    (folder / "b.txt").write_text("Bananas are yellow and grow in bunches.\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "c.py").write_text("def parse_config(path):\n    return open(path).read()\n")
    return folder


@pytest.fixture
def service(tmp_path: Path, model_info, notes: Path):
    with running_service(Instance(tmp_path, [notes], index={"max_file_mb": 0.05})) as svc:
        yield svc


def texts_embedded(svc: Service) -> int:
    return int(svc.metrics.snapshot()["counters"].get("chunks_embedded", 0))


def test_initial_index_matches_folder(service, notes):
    settle(service, notes)
    status = service.status()
    assert status["files_indexed"] == 3 and status["chunks"] >= 3


def test_create_modify_delete(service, notes):
    (notes / "new.md").write_text("A brand new note about pears.\n")
    settle(service, notes, "created file indexed")
    (notes / "new.md").write_text("A changed note about plums instead.\n")
    settle(service, notes, "modified file re-indexed")
    assert "plums" in " ".join(c.text for c in service.manifest.chunks_of(str(notes / "new.md")))
    (notes / "new.md").unlink()
    settle(service, notes, "deleted file forgotten")


def test_rename_and_move_folder_reuse_vectors(service, notes):
    before = texts_embedded(service)
    (notes / "a.md").rename(notes / "renamed.md")
    settle(service, notes, "rename")
    shutil.move(str(notes / "sub"), str(notes / "moved"))
    settle(service, notes, "folder move")
    # renamed/moved chunks went through the embedder, but all from the cache: no worker ran them
    cache = service.pool.stats()["cache"]
    assert cache["hits"] >= texts_embedded(service) - before


def test_atomic_save_and_burst_of_saves(service, notes):
    target = notes / "b.txt"
    for i in range(3):  # editor-style atomic save: write a temp file, rename over the target
        tmp = notes / f".b.txt.tmp{i}"
        tmp.write_text(f"Saved atomically, version {i}.\n")
        os.replace(tmp, target)
    settle(service, notes, "atomic save")
    assert "version 2" in service.manifest.chunks_of(str(target))[0].text
    for i in range(20):
        target.write_text(f"Burst save number {i}.\n")
    settle(service, notes, "burst of saves")
    assert "number 19" in service.manifest.chunks_of(str(target))[0].text


def test_one_line_edit_reembeds_at_most_two_chunks(service, notes):
    big = notes / "big.md"
    big.write_text(paragraphs(180, "big"))
    settle(service, notes, "big file indexed")
    n_chunks = len(service.manifest.chunks_of(str(big)))
    assert n_chunks >= 50
    before = texts_embedded(service)
    lines = big.read_text().split("\n")
    lines[len(lines) // 2] += " An edited line."
    big.write_text("\n".join(lines))
    settle(service, notes, "one-line edit")
    assert texts_embedded(service) - before <= 2


def test_bad_files_are_skipped_with_reasons(service, notes):
    bad = notes / "bad"
    bad.mkdir()
    (bad / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (bad / "latin.bin").write_bytes(bytes([0, 1, 2, 3, 0xFF, 0xFE]) * 100)
    (bad / "empty.txt").write_bytes(b"")
    (bad / "huge.txt").write_text("word " * 20000)  # > max_file_mb (0.05)
    os.mkfifo(bad / "pipe")
    (bad / "loop1").symlink_to(bad / "loop2")
    (bad / "loop2").symlink_to(bad / "loop1")
    (bad / "good.md").write_text("This one is fine and must be indexed.\n")
    bad_names = {"image.png", "latin.bin", "empty.txt", "huge.txt", "pipe", "loop1", "loop2"}

    def reasons():
        probs = {Path(p["path"]).name: p["reason"] for p in service.status()["failures"]}
        return probs if bad_names <= set(probs) and service.state() == "idle" else None

    probs = wait_for(reasons, timeout=60, what="every bad file recorded")
    assert all(probs[n] for n in bad_names), probs
    assert "empty" in probs["empty.txt"] and "binary" in probs["image.png"]
    assert service.manifest.file(str(bad / "good.md")).kind.status == "indexed"
    assert service.state() == "idle"


def test_search_finds_identifier_and_meaning(service, notes):
    hits = Api(service).handlers()["search"]({"query": "parse_config", "limit": 3})["hits"]
    assert hits[0]["path"] == str(notes / "sub" / "c.py")
    hits = Api(service).handlers()["search"]({"query": "yellow fruit that grows in bunches", "mode": "semantic"})["hits"]
    assert hits[0]["path"] == str(notes / "b.txt")
    hits = Api(service).handlers()["search"]({"query": "fox", "path": str(notes / "sub")})["hits"]
    assert all(h["path"].startswith(str(notes / "sub")) for h in hits)


def test_reload_adds_and_purges_folders(service, notes, tmp_path):
    from dataclasses import replace

    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "e.md").write_text("An extra folder added by a config reload.\n")
    base = service.cfg
    service.reload(replace(base, index=replace(base.index, folders=base.index.folders + (extra,))))
    wait_for(lambda: service.manifest.file(str(extra / "e.md")) is not None and service.state() == "idle",
             timeout=60, what="added folder indexed")
    service.reload(base)
    wait_for(lambda: service.manifest.file(str(extra / "e.md")) is None and service.state() == "idle",
             timeout=60, what="removed folder purged")
    settle(service, notes)
