"""Helpers shared by the integration tests: isolated instances, waiting on conditions."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCE_PATH = os.pathsep.join((str(REPO), str(REPO / "client")))  # PYTHONPATH for this checkout's packages
TEST_MODELS = REPO / ".cache" / "test-models"   # converted once, shared by every test


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, what: str = "condition", interval: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Instance:
    """An isolated semdex instance: its own XDG dirs (short runtime dir for sockets) and config."""

    def __init__(self, tmp_path: Path, folders: list[Path], **sections: dict[str, Any]) -> None:
        self.tmp = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.runtime = Path(tempfile.mkdtemp(dir="/tmp", prefix="sx"))
        self.env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
                    "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
                    "XDG_RUNTIME_DIR": str(self.runtime)}
        base: dict[str, dict[str, Any]] = {
            "index": {"folders": [str(f) for f in folders], "debounce_ms": 50, "reconcile_interval_s": 0},
            "pool": {"workers": 1},
            "paths": {"models_dir": str(TEST_MODELS)},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        self.config_file = tmp_path / "config.toml"
        self.config_file.write_text(to_toml(base))

    def config(self):
        from semdexd.config import load_config
        return load_config(self.config_file, env=self.env)

    def cleanup(self) -> None:
        shutil.rmtree(self.runtime, ignore_errors=True)


@contextmanager
def running_service(inst: Instance, ready: Callable[[Any], Any] = lambda svc: True) -> Iterator[Any]:
    """A real `Service` on ``inst``'s config, yielded once its initial index is done (idle, no
    error, and ``ready(svc)``); stopped, and ``inst`` cleaned up, afterwards."""
    from semdexd.app.service import Service

    svc = Service(inst.config())
    svc.start()
    try:
        wait_for(lambda: svc.error or (svc.state() == "idle" and ready(svc)), timeout=180, what="initial index")
        assert svc.error is None, svc.error
        yield svc
    finally:
        svc.stop()
        inst.cleanup()


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {value(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def repository_lines() -> list[str]:
    """Every non-blank line of the README, the docs and the daemon's sources: real prose and code."""
    repo = Path(__file__).resolve().parent.parent
    lines = []
    for path in [repo / "README.md", *sorted((repo / "docs").glob("*.md")), *sorted((repo / "semdexd").rglob("*.py"))]:
        lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines


# A command prefix that runs the command with SIGINT at its default, as from a terminal: a test
# runner started in the background (or by a supervisor) may pass SIGINT on ignored, and Python
# then never raises KeyboardInterrupt, so a Ctrl-C test would wait forever.
WITH_CTRL_C = [sys.executable, "-c",
               "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"]


def index_snapshot(inst: Instance, word: str = "reliability") -> tuple[set[str], set[str], dict[str, str]]:
    """(manifest chunk ids, store ids, path -> hash) read from disk with no daemon running; the
    lexical index is checked against the chunks it indexes (FTS5's integrity check, and a search
    for ``word`` finds exactly the chunks holding it)."""
    from semdexd.store.manifest import Manifest
    from semdexd.store.layout import Layout
    from semdexd.store.vectors import VectorStore

    cfg = inst.config()
    db = next((cfg.paths.data_dir / "index").glob("*/manifest.sqlite3"))
    manifest = Manifest(db)
    store = VectorStore(cfg, Layout.of(cfg).collection_of(db.parent.name))
    files = {p: manifest.file(p).hash for p in manifest.all_paths()}
    chunk_ids = manifest.all_chunk_ids()
    # the lexical index agrees with the chunks it indexes (raises if FTS and content differ) ...
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        with_word = {r[0] for r in con.execute("SELECT id FROM chunks WHERE text LIKE ?", (f"%{word}%",))}
    # ... and finds exactly the chunks that contain a word
    assert {i for i, _ in manifest.lexical.search(f'"{word}"', 10_000)} == with_word
    out = (chunk_ids, store.all_ids(), files)
    manifest.close()
    return out


def assert_like_clean_run(inst: Instance, clean: tuple[set[str], set[str], dict[str, str]]) -> None:
    """The index of ``inst`` (no daemon running) equals the clean run's: same files, same chunk
    ids, and the store holds exactly the manifest's ids."""
    chunk_ids, store_ids, files = index_snapshot(inst)
    want_ids, _, want_files = clean
    assert files == want_files
    assert chunk_ids == want_ids
    assert store_ids == chunk_ids, (len(store_ids - chunk_ids), len(chunk_ids - store_ids))
