"""Reader processes: files read on every core give what reading them in the daemon gives; a file
that kills its reader becomes poison while the others are read; readers stop when asked, when
idle, and never outlive their owner. Real processes, real files, the real model's tokenizer."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from semdexd.embed.tokens import TokenCounter
from semdexd.index import readers as readers_module
from semdexd.index.read import ReadLimits, read_file
from semdexd.index.readers import Readers, Setup
from semdexd.kinds import Kind
from tests.support import wait_for

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def limits(make_config, tmp_path, model_info) -> ReadLimits:
    return ReadLimits.of(make_config(tmp_path), model_info.max_tokens)


def _files(folder: Path) -> list[Path]:
    folder.mkdir()
    for i in range(6):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\nLanterns and harbours, note {i}.\n" * (1 + 40 * i))
    (folder / "image.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.txt").write_text("")
    return [*sorted(folder.iterdir()), folder / "gone.md", REPO / "README.md", REPO / "semdexd/index/readers.py"]


def _pids(readers: Readers) -> list[int]:
    return [r.proc.pid for r in readers._readers]


def _gone(pids: list[int]) -> bool:
    """None of ``pids`` runs (a zombie waiting for its parent's reaping does not)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_readers_read_as_the_daemon_does(tmp_path, limits, model_info) -> None:
    paths = _files(tmp_path / "files")
    same = next(p for p in paths if p.name == "note1.md")
    items = [(str(p), "") for p in paths] + [(str(same), hashlib.sha256(same.read_bytes()).hexdigest())]
    readers = Readers(Setup.of(model_info, limits, nice=0), 2, threading.Event())
    try:
        got = dict(readers.read(items))
        pids = _pids(readers)
    finally:
        readers.close()
    count = TokenCounter(model_info).count
    assert sorted(got) == list(range(len(items)))
    for i, (path, unless) in enumerate(items):
        want = read_file(Path(path), limits, count, unless)
        assert (got[i].kind, got[i].reason, got[i].content_hash, got[i].chunks, got[i].unchanged) == \
            (want.kind, want.reason, want.content_hash, want.chunks, want.unchanged), path
    assert got[len(items) - 1].unchanged and not got[len(items) - 1].chunks   # only hashed
    assert got[paths.index(REPO / "README.md")].chunks                         # a real file, many chunks
    assert {got[i].kind for i in range(len(paths))} >= {Kind.INDEXED, Kind.SKIPPED, Kind.FAILED}
    assert len(pids) == 2
    wait_for(lambda: _gone(pids), timeout=10, what="readers gone after close")


def test_a_file_that_kills_its_reader_becomes_poison_and_the_others_are_read(tmp_path, limits, model_info,
                                                                            monkeypatch) -> None:
    folder = tmp_path / "notes"
    paths = _files(folder)
    bomb = folder / "bomb.md"
    bomb.write_text("# Bomb\n\nThis file kills whatever reads it.\n")
    monkeypatch.setenv("SEMDEX_TEST_CRASH_AT", "prepare@bomb.md")   # inherited by the readers
    readers = Readers(Setup.of(model_info, limits, nice=0), 2, threading.Event())
    items = [(str(p), "") for p in [bomb, *paths]]
    try:
        got = dict(readers.read(items))
        assert len(readers._readers) == 2 and all(r.proc.poll() is None for r in readers._readers)
        again = dict(readers.read(items[1:3]))     # the replaced readers go on reading
    finally:
        readers.close()
    assert got[0].kind == Kind.POISON and not got[0].chunks
    assert "died reading it (2 times, last: exit code 137)" in got[0].reason, got[0].reason
    assert "semdex reindex" in got[0].reason
    assert all(got[i].kind != Kind.POISON for i in range(1, len(items)))
    assert [got[i].kind for i, (path, _) in enumerate(items) if Path(path).name.startswith("note")] == [Kind.INDEXED] * 6
    assert [r.kind for _, r in sorted(again.items())] == [got[1].kind, got[2].kind]


def test_stopping_ends_a_read_at_once_and_closing_leaves_no_process(tmp_path, limits, model_info,
                                                                    monkeypatch) -> None:
    paths = _files(tmp_path / "files")
    monkeypatch.setenv("SEMDEX_TEST_HANG_AT", "prepare:1")   # every reader hangs in its first file
    stopping = threading.Event()
    readers = Readers(Setup.of(model_info, limits, nice=0), 2, stopping)
    got: list[object] = []
    reading = threading.Thread(target=lambda: got.extend(readers.read([(str(p), "") for p in paths])))
    reading.start()
    wait_for(lambda: len(readers._readers) == 2, timeout=10, what="readers started")
    pids = _pids(readers)
    stopping.set()
    reading.join(timeout=5)
    assert not reading.is_alive() and got == []
    readers.close()
    wait_for(lambda: _gone(pids), timeout=10, what="hung readers killed")


def test_idle_readers_stop_and_start_again(tmp_path, limits, model_info, monkeypatch) -> None:
    paths = [p for p in _files(tmp_path / "files") if p.name.startswith("note")]
    monkeypatch.setattr(readers_module, "IDLE_S", 0.3)
    readers = Readers(Setup.of(model_info, limits, nice=0), 1, threading.Event())
    try:
        assert dict(readers.read([(str(paths[0]), "")]))[0].kind == Kind.INDEXED
        pids = _pids(readers)
        readers.close_if_idle()
        assert readers.running                   # just used
        wait_for(lambda: (readers.close_if_idle(), not readers.running)[1], timeout=10, what="idle stop")
        wait_for(lambda: _gone(pids), timeout=10, what="idle readers gone")
        assert dict(readers.read([(str(paths[1]), "")]))[0].kind == Kind.INDEXED
    finally:
        readers.close()


OWNER = """
import sys, threading
from pathlib import Path
from semdexd.config import load_config
from semdexd.embed.model import prepare_model
from semdexd.index.read import ReadLimits
from semdexd.index.readers import Readers, Setup
cfg = load_config(Path(sys.argv[1]))
info = prepare_model(cfg)
readers = Readers(Setup.of(info, ReadLimits.of(cfg, info.max_tokens), 0), 2, threading.Event())
list(readers.read([(sys.argv[2], "")]))
print("PIDS", *(r.proc.pid for r in readers._readers), flush=True)
threading.Event().wait()
"""


def test_readers_die_with_their_owner(tmp_path, make_config, model_info) -> None:
    """kill -9 of the process that owns them: its readers go too (none is left behind)."""
    cfg = make_config(tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[paths]\nmodels_dir = "{cfg.paths.models_dir}"\n')
    note = tmp_path / "note.md"
    note.write_text("# A note\n\nabout lanterns\n")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(config_file), str(note)], stdout=subprocess.PIPE,
                             cwd=REPO, text=True)
    try:
        assert owner.stdout is not None
        line = next(line for line in owner.stdout if line.startswith("PIDS "))   # after its log lines
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    finally:
        owner.kill()
        owner.wait()
    wait_for(lambda: _gone(pids), timeout=10, what="readers gone with their owner")
