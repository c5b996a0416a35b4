"""Reliability contract: kill -9 (or SIGTERM) of the real daemon at random points of indexing,
then a restart, ends in exactly the index a clean run gives: same chunk ids, same count, store
and manifest in agreement, no orphan worker left behind.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support import Instance, assert_like_clean_run, index_snapshot, wait_for

FILES = 24


def make_corpus(folder: Path) -> None:
    folder.mkdir()
    for i in range(FILES):
        body = "\n\n".join(
            f"Note {i}.{j}: the reliability contract says nothing indexed is lost or duplicated "
            f"after a crash; paragraph {j} of file {i} exists to make a chunk of its own."
            for j in range(4))
        (folder / f"note{i:02d}.md").write_text(f"# Note {i}\n\n{body}\n")


class Daemon:
    """`semdexd run` in a subprocess on an isolated instance."""

    def __init__(self, inst: Instance, prefix: list[str] | None = None, env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        """``log``: stderr goes to that file (read it while the daemon runs), else to a pipe."""
        self.inst = inst
        self.log = log
        with open(log, "ab") if log else open(os.devnull, "rb") as sink:
            self.proc = subprocess.Popen(
                (prefix or []) + [sys.executable, "-m", "semdexd.app.cli", "run", "--config", str(inst.config_file)],
                env={**os.environ, **inst.env, **(env or {})}, stdout=subprocess.DEVNULL,
                stderr=sink if log else subprocess.PIPE)
        self.children: list[psutil.Process] = []

    def logged(self, event: str) -> bool:
        return self.log is not None and f'"event": "{event}"' in self.log.read_text(errors="replace")

    def manifest_db(self) -> Path | None:
        found = list((Path(self.inst.env["XDG_DATA_HOME"]) / "semdex" / "index").glob("*/manifest.sqlite3"))
        return found[0] if found else None

    def files_done(self) -> int:
        db = self.manifest_db()
        if db is None:
            return 0
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                return con.execute("SELECT count(*) FROM files").fetchone()[0]
        except sqlite3.Error:
            return 0

    def embedded_and_awaiting(self) -> tuple[int, int]:
        """(chunks with their vectors, chunks awaiting them) in the manifest on disk."""
        db = self.manifest_db()
        if db is None:
            return 0, 0
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                have = {r[1] for r in con.execute("PRAGMA table_info(chunks)")}   # (cid, name, ...)
                if "embedded" not in have:
                    return 0, 0
                done, waiting = con.execute(
                    "SELECT sum(embedded = 1), sum(embedded = 0) FROM chunks").fetchone()
                return int(done or 0), int(waiting or 0)
        except sqlite3.Error:
            return 0, 0

    def note_children(self) -> None:
        try:
            self.children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            self.children = []

    def kill(self, sig: int) -> None:
        self.note_children()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)
        for child in self.children:  # workers must not outlive the daemon
            wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
                     timeout=30, what=f"worker {child.pid} to exit after the daemon died")


def run_to_idle(inst: Instance, prefix: list[str] | None = None) -> None:
    d = Daemon(inst, prefix)
    wait_for(lambda: d.files_done() >= FILES or d.proc.poll() is not None, timeout=300, what="index to complete")
    assert d.proc.poll() is None, d.proc.stderr.read().decode()[-3000:]
    wait_for(lambda: _idle(inst), timeout=120, what="daemon idle")
    d.kill(signal.SIGTERM)
    assert d.proc.returncode == 0, d.proc.stderr.read().decode()[-3000:]


def _idle(inst: Instance) -> bool:
    from semdex_client.api import Client  # the thin client, as a user's script would use it

    try:
        return Client(socket_path=inst.config().socket_path).call("status")["state"] == "idle"
    except Exception:
        return False


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    make_corpus(folder)
    return folder


@pytest.fixture
def clean_run(tmp_path: Path, corpus: Path, model_info):
    inst = Instance(tmp_path / "clean", [corpus])
    run_to_idle(inst)
    yield index_snapshot(inst)
    inst.cleanup()


@pytest.mark.parametrize("sig,readers_from", [(signal.SIGKILL, 64), (signal.SIGTERM, 64), (signal.SIGKILL, 1)],
                         ids=["kill-9", "sigterm", "kill-9-reader-processes"])
def test_interrupted_indexing_ends_like_a_clean_run(tmp_path, corpus, clean_run, sig, readers_from):
    """Interrupted three times while files are read (in the daemon, or in reader processes),
    chunked and embedded: the end is the clean run's index."""
    rng = random.Random(1234 + sig)
    inst = Instance(tmp_path / "crashy", [corpus], index={"readers_from": readers_from})
    try:
        for round_ in range(3):
            log = tmp_path / f"round{round_}.log"
            d = Daemon(inst, log=log)
            target = rng.randint(1, FILES - 2)
            wait_for(lambda: d.files_done() >= target or d.proc.poll() is not None, timeout=300,
                     what=f"round {round_}: {target} files indexed")
            assert d.proc.poll() is None, log.read_text()[-3000:]
            if round_ == 0:   # (later rounds may be killed before they read anything)
                assert d.logged("readers_started") == (readers_from == 1)
            d.kill(sig)
        run_to_idle(inst)
        assert_like_clean_run(inst, clean_run)
    finally:
        inst.cleanup()


def test_killed_between_words_and_meaning_ends_like_a_clean_run(tmp_path, corpus, clean_run):
    """kill -9 while some chunks have their vectors and others only their words, three times,
    the files changing between rounds: the end is the clean run's index. The daemon is held
    right after the first commit that stores vectors (an embed call covers at most a third of
    the corpus), so the kill lands in that window whatever the machine's speed."""
    inst = Instance(tmp_path / "window", [corpus])
    try:
        for round_ in range(3):
            log = tmp_path / f"round{round_}.log"
            d = Daemon(inst, env={"SEMDEX_TEST_HANG_AT": "after_vectors:1"}, log=log)
            wait_for(lambda: d.logged("test_hang_injected") or d.proc.poll() is not None, timeout=120,
                     what=f"round {round_}: the first vectors committed")
            assert d.proc.poll() is None, log.read_text()[-3000:]
            done, waiting = d.embedded_and_awaiting()
            assert done > 0 and waiting > 0, (round_, done, waiting)
            d.kill(signal.SIGKILL)
            for p in sorted(corpus.iterdir())[round_::3]:   # edited while the daemon is down
                p.write_text(p.read_text() + f"\nround {round_} addendum\n")
        for p in sorted(corpus.iterdir()):                  # back to the clean run's content
            p.write_text(p.read_text().split("\nround ")[0].rstrip("\n") + "\n")
        run_to_idle(inst)
        assert_like_clean_run(inst, clean_run)
    finally:
        inst.cleanup()


@pytest.mark.parametrize("point", ["after_delete:1", "after_words:1", "after_add:1"])
def test_crash_inside_the_write_window(tmp_path, corpus, clean_run, point):
    """The daemon dies exactly inside the write window (store changed, manifest not yet), and the
    files change again before the restart, so the interrupted write's ids are never reused."""
    inst = Instance(tmp_path / "window", [corpus])
    final = {p: p.read_text() for p in corpus.iterdir()}
    try:
        for p, text in final.items():  # first versions: their chunks become stale below
            p.write_text(text.replace("reliability contract", "first draft"))
        run_to_idle(inst)
        for p, text in final.items():  # second versions: written to the store when it dies
            p.write_text(text.replace("reliability contract", "second draft"))
        d = Daemon(inst, env={"SEMDEX_TEST_CRASH_AT": point})
        assert d.proc.wait(timeout=300) == 137, "the injected crash did not happen"
        for p, text in final.items():
            p.write_text(text)
        run_to_idle(inst)
        assert_like_clean_run(inst, clean_run)
    finally:
        inst.cleanup()
