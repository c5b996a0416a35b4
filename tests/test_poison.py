"""A file that kills the daemon while being read is recorded as poison on restart and skipped,
never retried in a crash loop; recovery after a crash leaves no orphan vector in the store."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from semdexd.index.recovery import POISON_AFTER_CRASHES
from tests.support import Instance, index_snapshot, wait_for
from tests.test_crash import Daemon, _idle

NOTES = 4


def notes(folder: Path) -> Path:
    folder.mkdir()
    for i in range(NOTES):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\nThe reliability contract, note {i}: lanterns.\n")
    return folder


def rows(inst: Instance) -> dict[str, tuple[str, str, str]]:
    """path name -> (status, kind, reason) as the manifest on disk says."""
    db = next((Path(inst.env["XDG_DATA_HOME"]) / "semdex" / "index").glob("*/manifest.sqlite3"))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        return {Path(p).name: (s, k, r) for p, s, k, r in con.execute("SELECT path, status, kind, reason FROM files")}


def settle(d: Daemon, inst: Instance, files: int) -> None:
    wait_for(lambda: d.files_done() >= files or d.proc.poll() is not None, timeout=300, what=f"{files} files")
    wait_for(lambda: _idle(inst) or d.proc.poll() is not None, timeout=120, what="daemon idle")
    assert d.proc.poll() is None, d.proc.stderr.read().decode()[-3000:]


def test_file_that_crashes_the_daemon_becomes_poison(tmp_path: Path, model_info) -> None:
    folder = notes(tmp_path / "notes")
    (folder / "bomb.md").write_text("# Bomb\n\nThis file kills the daemon whenever it is read.\n")
    inst = Instance(tmp_path / "inst", [folder])
    crash = {"SEMDEX_TEST_CRASH_AT": "prepare@bomb.md"}   # stays set for every run below
    try:
        for run in range(POISON_AFTER_CRASHES):   # dies reading it; one crash alone is not
            d = Daemon(inst, env=crash)              # poison (a kill -9 mid-read): it is retried
            assert d.proc.wait(timeout=300) == 137, f"run {run}: the injected crash did not happen"
        d = Daemon(inst, env=crash)                        # now it is poison: skipped
        settle(d, inst, NOTES + 1)
        d.kill(signal.SIGTERM)
        state = rows(inst)
        assert state["bomb.md"][:2] == ("failed", "poison"), state["bomb.md"]
        assert "crashed the daemon while being read" in state["bomb.md"][2]
        assert "semdex reindex" in state["bomb.md"][2]
        assert all(state[f"note{i}.md"][:2] == ("indexed", "indexed") for i in range(NOTES)), state
        d = Daemon(inst, env=crash)                        # a further restart does not retry it
        settle(d, inst, NOTES + 1)
        d.kill(signal.SIGTERM)
        assert d.proc.returncode == 0 and rows(inst)["bomb.md"][1] == "poison"
    finally:
        inst.cleanup()


def test_recovery_leaves_no_orphans_when_the_file_changed(tmp_path: Path, model_info) -> None:
    """After a crash, a file with a vector missing from the store is forgotten and redone; if it
    changed meanwhile, its other old vectors must not stay behind as orphans."""
    from semdexd.store.manifest import Manifest
    from semdexd.store.layout import Layout
    from semdexd.store.vectors import VectorStore

    folder = notes(tmp_path / "notes")
    long = folder / "long.md"
    long.write_text("# Long\n\n" + "\n\n".join(
        f"Paragraph {i}: the keeper trims the wick, polishes the lens and logs the weather "
        f"for night {i} of the long winter at the northern light." for i in range(12)) + "\n")
    inst = Instance(tmp_path / "inst", [folder], chunk={"target_tokens": 32, "overlap_tokens": 0})
    try:
        d = Daemon(inst)
        settle(d, inst, NOTES + 1)
        d.kill(signal.SIGTERM)
        db = next((Path(inst.env["XDG_DATA_HOME"]) / "semdex" / "index").glob("*/manifest.sqlite3"))
        manifest = Manifest(db)
        ids = [r.id for r in manifest.chunks_of(str(long))]
        assert len(ids) >= 3
        cfg = inst.config()
        store = VectorStore(cfg, Layout.of(cfg).collection_of(db.parent.name))
        store.delete(ids[:1])                      # a vector lost in a crash ...
        manifest.set_meta("clean_shutdown", "0")   # ... of an unclean shutdown
        manifest.close()
        del store
        long.write_text("# Long\n\nRewritten: a single short paragraph now.\n")  # changed meanwhile
        d = Daemon(inst)
        settle(d, inst, NOTES + 1)
        wait_for(lambda: any("Rewritten" in c for c in _texts(db, long)), timeout=60, what="long.md redone")
        d.kill(signal.SIGTERM)
        chunk_ids, store_ids, _ = index_snapshot(inst)
        assert store_ids == chunk_ids, (len(store_ids - chunk_ids), len(chunk_ids - store_ids))
    finally:
        inst.cleanup()


def _texts(db: Path, path: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        return [r[0] for r in con.execute("SELECT text FROM chunks WHERE path=?", (str(path),))]
