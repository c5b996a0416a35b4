"""Degraded operation with the real daemon: a full disk under the data dir, prompt stop, reloads.

* The data dir is a small tmpfs (we are root here and in CI; skipped with the reason where mount
  fails). The test fills it with a ballast file while files are being indexed, so store/manifest
  writes hit ENOSPC; status must say ``degraded`` with the reason, searches keep answering, SIGTERM
  stops it quickly, a restart on the still-full disk retries (never a final ``error``), and once the
  ballast is gone the index ends exactly as a clean run's (store ids == manifest ids, same files).
* Stop during a cold index: SIGTERM exits quickly (liveness bound only), and the next start
  completes the index identical to a clean run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support import Instance, assert_like_clean_run, index_snapshot, wait_for

FILES = 16
HALF = FILES // 2


def make_corpus(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in range(FILES):
        body = "\n\n".join(
            f"Entry {i}.{j}: a degraded daemon keeps answering searches while the disk is full; "
            f"paragraph {j} of file {i} is here so that it makes a chunk of its own."
            for j in range(3))
        (folder / f"entry{i:02d}.md").write_text(f"# Entry {i}\n\n{body}\n")


class Daemon:
    """`semdexd run` on an instance, its stderr kept in a file."""

    def __init__(self, inst: Instance, log: Path) -> None:
        self.inst = inst
        self.cfg = inst.config()
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "semdexd.app.cli", "run", "--config", str(inst.config_file)],
                env={**os.environ, **inst.env}, stdout=subprocess.DEVNULL, stderr=err)

    def logged(self, event: str) -> bool:
        return f'"event": "{event}"' in self.log.read_text(errors="replace")

    def call(self, method: str, **params: Any) -> Any:
        from semdex_client.api import Client

        return Client(socket_path=self.cfg.socket_path, timeout=10).call(method, **params)

    def status(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"semdexd exited with {self.proc.returncode}")
        try:
            return self.call("status")  # type: ignore[no-any-return]
        except Exception:
            return None

    def state(self) -> str | None:
        st = self.status()
        return st["state"] if st else None

    def stop(self, bound_s: float = 15.0) -> float:
        """SIGTERM; the time it took to exit (asserted only as a liveness bound)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(bound_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"semdexd still running {bound_s} s after SIGTERM") from None
        return time.monotonic() - started


def run_to_idle(inst: Instance, log: Path) -> None:
    d = Daemon(inst, log)
    wait_for(lambda: d.state() == "idle", timeout=300, what="index to complete")
    wait_for(lambda: d.logged("initial_index_done"), timeout=30, what="the initial index marked complete")
    d.stop()
    assert d.proc.returncode == 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("degraded") / "corpus"
    make_corpus(folder)
    return folder


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, corpus: Path, model_info: Any) -> Iterator[tuple[set[str], set[str], dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("clean")
    inst = Instance(tmp, [corpus])
    run_to_idle(inst, tmp / "stderr")
    yield index_snapshot(inst)
    inst.cleanup()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs, unmounted after the test."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test (needs root): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the file system is full."""
    ballast = disk / "ballast"
    with open(ballast, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
        except OSError:
            pass
    return ballast


def test_full_disk_degrades_keeps_serving_and_recovers_like_a_clean_run(tmp_path, corpus, clean, small_disk):
    """Q1+Q2 indexed; Q3 arrives on a full disk: degraded, searches answer, space returns, it
    resumes by itself; Q4 arrives on a full disk again: SIGTERM (prompt), restart while still
    full (degraded, retrying, never error), space returns: the index equals a clean run's."""
    held = tmp_path / "held"
    held.mkdir()
    files = sorted(corpus.iterdir())
    q3, q4 = files[HALF:HALF + HALF // 2], files[HALF + HALF // 2:]
    inst = Instance(tmp_path / "inst", [corpus], paths={"data_dir": str(small_disk / "semdex")})
    log = tmp_path / "stderr"
    try:
        for p in q3 + q4:
            p.rename(held / p.name)
        d = Daemon(inst, log)
        wait_for(lambda: d.state() == "idle", timeout=300, what="the first half indexed")

        ballast = fill(small_disk)
        arrive(q3, held)
        st = wait_for(lambda: (s := d.status()) and s["state"] == "degraded" and s, timeout=60,
                      what="state degraded")
        assert "store write failed" in st["degraded"]["reason"], st["degraded"]
        assert st["degraded"]["pending_files"] > 0
        hits = d.call("search", query="degraded daemon keeps answering", limit=5)["hits"]
        assert hits, "searches must be answered from what is indexed"
        freed = time.monotonic()
        ballast.unlink()
        wait_for(lambda: d.state() == "idle", timeout=120, what="indexing resumed after the disk freed")
        resumed_s = time.monotonic() - freed

        ballast = fill(small_disk)
        arrive(q4, held)
        wait_for(lambda: d.state() == "degraded", timeout=60, what="degraded again")
        took = d.stop()  # SIGTERM while degraded: prompt
        d = Daemon(inst, log)  # a restart on the still-full disk retries; never a final error
        wait_for(lambda: d.state() in ("degraded", "error"), timeout=120, what="restart on a full disk")
        assert d.state() == "degraded", d.status()
        freed = time.monotonic()
        ballast.unlink()
        wait_for(lambda: d.state() == "idle", timeout=120, what="recovery after the disk freed")
        restarted_s = time.monotonic() - freed
        d.stop()
        print(f"resumed {resumed_s:.1f}s after the disk freed; stop while degraded {took:.1f}s; "
              f"after a restart on the full disk: idle {restarted_s:.1f}s after it freed")
        assert_like_clean_run(inst, clean)
    finally:
        for p in held.iterdir():
            p.rename(corpus / p.name)
        inst.cleanup()


def arrive(paths: list[Path], held: Path) -> None:
    for p in paths:
        (held / p.name).rename(p)


class ChromaServer:
    """A real `chroma run` on 127.0.0.1 (a free port), its data in ``path``."""

    def __init__(self, path: Path, log: Path) -> None:
        self.path, self.log = path, log
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start it; return how long it took to answer its heartbeat."""
        exe = Path(sys.executable).parent / "chroma"
        if not exe.exists():
            pytest.skip("the chroma CLI is not installed beside the interpreter")
        started = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(exe), "run", "--path", str(self.path), "--host", "127.0.0.1",
                                          "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        wait_for(self.answers, timeout=60, what="chroma run to answer")
        return time.monotonic() - started

    def answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_chroma_server_killed_and_restarted_mid_index(tmp_path, corpus, clean):
    """``[store] backend = "http"`` against a real `chroma run`: the daemon starts before the
    server (degraded, retrying its open); then the server is killed -9 while new files arrive: the
    daemon reports degraded, keeps answering searches, resumes when the server is back, and ends
    with the clean run's index."""
    held = tmp_path / "held"
    held.mkdir()
    second = sorted(corpus.iterdir())[HALF:]
    server = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log")
    inst = Instance(tmp_path / "inst", [corpus],
                    store={"backend": "http", "host": "127.0.0.1", "port": server.port})
    log = tmp_path / "stderr"
    try:
        for p in second:
            p.rename(held / p.name)
        d = Daemon(inst, log)
        st = wait_for(lambda: (s := d.status()) and s["state"] in ("degraded", "error") and s, timeout=120,
                      what="degraded while the server is not up")
        assert st["state"] == "degraded" and "Chroma server" in st["degraded"]["reason"], st
        up_s = server.start()
        wait_for(lambda: d.state() == "idle", timeout=300, what="the first half indexed over http")
        server.kill()
        arrive(second, held)
        st = wait_for(lambda: (s := d.status()) and s["state"] == "degraded" and s, timeout=60,
                      what="state degraded with the server down")
        assert "store write failed" in st["degraded"]["reason"], st["degraded"]
        assert d.call("search", query="degraded daemon keeps answering", limit=5)["hits"]
        back = time.monotonic()
        server.start()
        wait_for(lambda: d.state() == "idle", timeout=120, what="indexing resumed with the server back")
        print(f"chroma run answered in {up_s:.1f}s; idle {time.monotonic() - back:.1f}s after restarting it")
        d.stop()
        assert_like_clean_run(inst, clean)
    finally:
        for p in held.iterdir():
            p.rename(corpus / p.name)
        server.kill()
        inst.cleanup()


def test_sighup_with_changed_chunk_settings_keeps_the_live_index(tmp_path, corpus, clean):
    """A reload that changes ``[chunk]`` during the initial index must not re-key the running
    index (it used to: the live index folder was then removed as 'old' once indexing finished);
    the change is reported as needing a restart and the index ends as a clean run's."""
    inst = Instance(tmp_path / "inst", [corpus])
    d = Daemon(inst, tmp_path / "stderr")
    try:
        wait_for(lambda: d.state() in ("indexing", "idle"), timeout=300, what="the store opened")
        d.call("pause")
        index_root = inst.config().paths.data_dir / "index"
        live = {p.name for p in index_root.iterdir()}
        with open(inst.config_file, "a") as fh:
            fh.write("[chunk]\ntarget_tokens = 64\noverlap_tokens = 8\n")
        d.proc.send_signal(signal.SIGHUP)
        st = wait_for(lambda: (s := d.status()) and s.get("restart_needed") and s, timeout=30,
                      what="the reload to be noted")
        assert "chunk" in st["restart_needed"]
        d.call("resume")
        wait_for(lambda: d.state() == "idle", timeout=300, what="index to complete")
        wait_for(lambda: d.logged("initial_index_done"), timeout=30, what="the initial index's clean-up")
        assert {p.name for p in index_root.iterdir()} == live
        assert d.call("search", query="degraded daemon keeps answering", limit=3)["hits"]
        d.stop()
        assert_like_clean_run(inst, clean)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        inst.cleanup()


def test_sigterm_during_a_cold_index_stops_quickly_and_the_next_start_completes(tmp_path):
    """SIGTERM mid cold index: the write in progress completes, nothing queued is drained, the
    process exits quickly (< 15 s: a liveness bound, not a figure; measured ~1 s vs ~28 s before);
    the next start's reconcile completes the index exactly as a clean run (which reuses the
    embedding cache, so it costs no model time)."""
    folder = tmp_path / "cold"
    folder.mkdir()
    for i in range(16):
        paras = [f"Cold {i}.{j}: " + " ".join(f"w{(i * 7 + j * 13 + k) % 97}x{k}" for k in range(18))
                 for j in range(6)]
        (folder / f"cold{i:02d}.txt").write_text("\n\n".join(paras) + "\n")
    small = {"target_tokens": 32, "overlap_tokens": 4}
    inst = Instance(tmp_path / "inst", [folder], chunk=small)
    log = tmp_path / "stderr"
    try:
        d = Daemon(inst, log)
        st = wait_for(lambda: (s := d.status()) and s["files_indexed"] >= 1 and s, timeout=300,
                      what="the first write of the cold index")
        pending = st["files_queued"] + st["meaning"]["chunks_awaiting"]   # words first: vectors follow
        assert pending > 0, "the index finished before SIGTERM: nothing was tested"
        took = d.stop()
        assert d.proc.returncode == 0
        print(f"stop during a cold index: {took:.1f}s ({st['files_indexed']} of 16 files written)")
        run_to_idle(inst, log)
        got = index_snapshot(inst)

        ref = Instance(tmp_path / "ref", [folder], chunk=small)
        cache = inst.config().paths.cache_file
        ref_data = ref.config().paths.data_dir
        ref_data.mkdir(parents=True)
        for f in cache.parent.glob(cache.name + "*"):
            shutil.copy(f, ref_data / f.name)
        run_to_idle(ref, tmp_path / "ref.stderr")
        want = index_snapshot(ref)
        ref.cleanup()
        assert got[2] == want[2]
        assert got[0] == want[0]
        assert got[1] == got[0]
    finally:
        inst.cleanup()


@pytest.mark.parametrize("switch", ["float32-to-int8", "minilm-to-e5"])
def test_previous_index_answers_until_the_rebuild_for_a_new_model_completes(tmp_path, corpus, switch, request):
    """A model change (float32 -> int8, or MiniLM -> multilingual-e5-small: another model id, so
    another index) builds the new index beside the old; until it is complete, searches are
    answered from the old index with the old model's query encoder; then the new one serves and
    the old is removed. The Service's boot steps are driven by hand (open, then scan) so that
    'before the rebuild completes' is certain."""
    from dataclasses import replace

    from semdexd.app.service import Service

    if switch == "minilm-to-e5":
        new = request.getfixturevalue("e5_model")
        inst = Instance(tmp_path / "inst", [corpus])
    else:
        new = {"compute_type": "int8"}
        inst = Instance(tmp_path / "inst", [corpus], model={"compute_type": "float32"})
    run_to_idle(inst, tmp_path / "stderr")
    index_root = inst.config().paths.data_dir / "index"
    (old_key,) = [p.name for p in index_root.iterdir()]
    cfg = inst.config()
    svc = Service(replace(cfg, model=replace(cfg.model, **new)))
    try:
        svc.parts = svc._open()  # the new index is open and empty; nothing queued yet
        serving = svc.serving()
        assert serving["previous"] and serving["index"] == old_key and serving["building"] != old_key
        assert svc.manifest.counts()["indexed"] == 0
        text = next(iter(svc.previous.manifest.chunks_of(str(sorted(corpus.iterdir())[3])))).text
        vec = svc.previous.embedder.embed([text], kind="passage")[0]
        best = svc.previous.store.query(vec, 1)[0]
        assert best.score > 0.999, "the old index must be queried with the old model's vectors"
        from semdexd.search import SearchRequest

        assert svc.searcher.search(SearchRequest(query="degraded daemon keeps answering")), \
            "searches during the rebuild are answered from the previous index"
        check_handlers_read_the_previous_index(svc, corpus)
        svc._scanned.set()
        svc.indexer.scan()
        svc._after_initial_index()
        assert not svc.serving()["previous"] and svc.previous is None
        assert [p.name for p in index_root.iterdir()] == [svc.serving()["index"]]
        assert svc.manifest.counts()["indexed"] == len(list(corpus.iterdir()))
        assert svc.searcher.search(SearchRequest(query="degraded daemon keeps answering"))
    finally:
        svc.stop()
        inst.cleanup()


def check_handlers_read_the_previous_index(svc: Any, corpus: Path) -> None:
    """While the previous index serves, the search handler's notices and the similar handler read
    its manifest (the one the hits come from), not the new index's (empty here)."""
    from semdexd.app.handlers import Api

    svc._ready.set()  # what the boot thread does once open
    api = Api(svc).handlers()
    path = str(sorted(corpus.iterdir())[3])
    hits = api["similar"]({"path": path, "limit": 3})["hits"]
    assert hits and all(h["path"] != path for h in hits), "similar answers from the previous index"
    none_above = api["search"]({"query": "zebra quantum xylophone", "path": [str(corpus)], "min_score": 1.0})
    assert not none_above["hits"] and "notice" not in none_above, \
        "the previous index has files under the folder: no 'no indexed files' notice"
    elsewhere = api["search"]({"query": "degraded daemon", "path": [str(corpus / "nowhere")]})
    assert "no indexed files under" in elsewhere["notice"]


def test_a_write_stuck_in_native_code_holding_the_gil_still_ends_the_process(tmp_path, corpus, clean):
    """A store write that never returns while holding the GIL (simulated: libc sleep called through
    ctypes.PyDLL inside the write) freezes every Python thread, so no signal handler can run. The
    C-level watchdog (``freeze_exit_s``) still dumps the stacks and exits 1; SIGTERM sent meanwhile
    does not wait forever; the next start completes the index as a clean run."""
    inst = Instance(tmp_path / "inst", [corpus], server={"freeze_exit_s": 10, "stop_timeout_s": 5})
    log = tmp_path / "stderr"
    env = {"SEMDEX_TEST_HANG_AT": "after_add:1"}
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "semdexd.app.cli", "run", "--config", str(inst.config_file)],
                                env={**os.environ, **inst.env, **env}, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: "test_hang_injected" in log.read_text(errors="replace"), timeout=300, what="the hang")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)  # freeze_exit_s (10 s) + one watchdog tick; a liveness bound only
        assert rc == 1, rc
        assert "Thread" in log.read_text(errors="replace"), "the watchdog dumps every thread's stack"
        run_to_idle(inst, log)
        assert_like_clean_run(inst, clean)
    finally:
        if proc.poll() is None:
            proc.kill()
        inst.cleanup()


def test_status_view_shows_why_it_is_degraded():
    from semdex_client.status_view import render

    status = {"state": "degraded", "version": "x", "files_indexed": 3, "files_queued": 2,
              "degraded": {"degraded": True, "reason": "store write failed: OperationalError: database or disk is full",
                           "pending_files": 2, "retry_in_s": 4.0, "failures": 3, "since": 0.0},
              "serving": {"previous": True, "model": "old-model", "index": "a", "building": "b"},
              "restart_needed": "changed [chunk] applies at the next restart"}
    text = render(status, color=False)
    assert "degraded: store write failed" in text and "2 files pending" in text
    assert "previous index (old-model)" in text and "restart needed: changed [chunk]" in text
