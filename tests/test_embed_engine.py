"""The engine's shape and its guarantees: checked slot states, batch deadlines, bounded waits,
a worker restarting under its identity, queries beside hung bulk work, scale to zero, and
vectors that do not depend on the batch. Real workers over real ZeroMQ throughout."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import zmq.auth

from semdexd.embed.encoder import Encoder
from semdexd.embed.jobs import EmbedFailure
from semdexd.embed.pool import EmbedPool
from semdexd.faults import HANG_ENV
from semdexd.embed.slots import IllegalTransition, Slot, SlotState
from tests.support import wait_for

REPO = Path(__file__).resolve().parent.parent
HANG = "<<HANG>>"


def words(i: int, n: int) -> str:
    source = inspect.getsource(textwrap).split()
    start = (i * 53) % (len(source) - n)
    return " ".join(source[start:start + n])


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_slot_state_transitions_are_checked():
    slot = Slot(0)
    slot.move(SlotState.STARTING)
    slot.move(SlotState.IDLE)
    slot.move(SlotState.BUSY)
    with pytest.raises(IllegalTransition, match="busy -> starting"):
        slot.move(SlotState.STARTING)
    slot.move(SlotState.GONE)
    with pytest.raises(IllegalTransition, match="gone -> idle"):
        slot.move(SlotState.IDLE)
    slot.move(SlotState.EMPTY)
    with pytest.raises(IllegalTransition, match="empty -> busy"):
        slot.move(SlotState.BUSY)


def test_a_batch_past_its_deadline_is_redone_and_its_worker_replaced(make_pool, monkeypatch):
    """The compute thread hangs while the heartbeat lives: only the deadline can notice."""
    monkeypatch.setenv(HANG_ENV, HANG)
    pool, _ = make_pool(workers=2, batch_size=2, batch_timeout_s=1.5)
    texts = [f"ordinary text {i}" for i in range(6)]
    texts[3] = f"this one {HANG} never finishes"
    wait_for(lambda: sum(w["state"] == "idle" for w in pool.stats()["workers"]) == 2, what="two workers")
    pids = [w["pid"] for w in pool.stats()["workers"]]
    results = pool.embed(texts)
    assert isinstance(results[3], EmbedFailure) and "deadline" in results[3].reason, results[3]
    assert all(isinstance(results[i], np.ndarray) for i in (0, 1, 2, 4, 5))
    stats = pool.stats()
    assert stats["deadlines"] >= 2 and stats["failed"] == 1, stats
    wait_for(lambda: any(gone(pid) for pid in pids), what="a hung worker killed")
    assert pool.embed(["still serving"])[0].shape == (384,)


def test_embed_waits_at_most_embed_timeout(make_pool, monkeypatch):
    monkeypatch.setenv(HANG_ENV, HANG)
    pool, _ = make_pool(workers=1, batch_size=2, batch_timeout_s=600, embed_timeout_s=1.0)
    out: dict[str, Any] = {}
    call = threading.Thread(target=lambda: out.setdefault("r", pool.embed([f"a {HANG} b", "fine"])), daemon=True)
    call.start()
    call.join(timeout=60)
    assert not call.is_alive(), "embed never returned"
    assert all(isinstance(r, EmbedFailure) and "timed out after 1s" in r.reason for r in out["r"])


def test_query_is_answered_while_every_worker_is_stuck_on_bulk_work(make_pool, monkeypatch, model_info):
    monkeypatch.setenv(HANG_ENV, HANG)
    pool, _ = make_pool(workers=2, batch_size=1, batch_timeout_s=600)
    bulk = threading.Thread(target=pool.embed, args=([f"bulk {i} {HANG}" for i in range(4)],), daemon=True)
    bulk.start()
    wait_for(lambda: sum(w["state"] == "busy" for w in pool.stats()["workers"]) == 2, what="both workers stuck")
    query = "where is the retry policy configured?"
    answer = pool.embed([query], kind="query", priority=True, timeout=30)[0]
    assert isinstance(answer, np.ndarray)
    reference = Encoder(model_info).encode([model_info.query_prefix + query]).vectors[0]
    assert float(answer @ reference) >= 0.99999
    assert pool.stats()["queued"] >= 2            # the bulk work is still waiting: the query did not


def test_same_text_same_vector_alone_or_in_any_batch(make_pool):
    """int8 made a text's vector depend on its neighbours' padding (cosine down to 0.998)."""
    pool, _ = make_pool(workers=1, batch_size=8)
    texts = [words(i, n) for i, n in enumerate((3, 40, 120, 8, 200, 60, 15, 90, 150, 30, 5, 250))]
    alone = np.stack([pool.embed([t])[0] for t in texts])
    rng = np.random.default_rng(7)
    for _ in range(3):
        order = rng.permutation(len(texts))
        mixed = np.stack(pool.embed([texts[i] for i in order]))
        cosine = (mixed * alone[order]).sum(1)
        assert cosine.min() >= 0.99999, cosine.min()
        assert np.abs(mixed - alone[order]).max() <= 1e-6


def test_idle_workers_park_and_come_back_on_demand(make_pool):
    pool, _ = make_pool(workers=2, idle_shutdown_s=1.0)
    first = pool.embed(["before the pause"])[0]
    pids = [w["pid"] for w in pool.stats()["workers"]]
    stats = wait_for(lambda: (s := pool.stats())["parked"] and s, timeout=30, what="workers parked")
    assert all(w["state"] == "empty" and w["pid"] == 0 for w in stats["workers"])
    wait_for(lambda: all(gone(pid) for pid in pids), what="parked workers exited")
    assert pool.embed(["a query needs no worker"], kind="query", priority=True)[0].shape == (384,)
    assert pool.stats()["parked"]                  # queries stay in the daemon: workers stay parked
    again = pool.embed(["before the pause", "after the pause"])
    assert np.array_equal(again[0], first) and isinstance(again[1], np.ndarray)
    stats = pool.stats()
    assert stats["unparks"] >= 1 and not stats["parked"]


def certificate(folder: Path, name: str) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return zmq.auth.create_certificates(str(folder), name)


def test_a_worker_restarted_under_its_identity_does_not_lose_its_batch(tmp_path, make_config, model_info,
                                                                       monkeypatch):
    """A remote worker dies holding a batch and comes back (same identity) before the heartbeat
    gives up on it: its ``ready`` must give the batch back to the queue, not drop it."""
    import socket

    monkeypatch.setenv(HANG_ENV, HANG)
    server_public, server_secret = certificate(tmp_path / "server", "server")
    worker_public, worker_secret = certificate(tmp_path / "worker", "worker")
    (tmp_path / "server" / "authorized_workers").mkdir()
    shutil.copy(worker_public, tmp_path / "server" / "authorized_workers")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    cfg = make_config(tmp_path, pool={"workers": 1, "cache_mb": 0, "heartbeat_ms": 200, "heartbeat_misses": 200,
                                      "batch_size": 1, "remote_endpoint": endpoint,
                                      "curve_secret_key_file": server_secret})
    pool = EmbedPool(cfg, model_info)
    pool.start()
    key = zmq.auth.load_certificate(server_public)[0].decode()

    def remote() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "semdexd.embed.worker", "--endpoint", endpoint,
                                 "--identity", "R-same", "--info", json.dumps(model_info.to_dict()),
                                 "--heartbeat-ms", "200", f"--server-public-key={key}",
                                 "--secret-key-file", worker_secret], cwd=REPO)

    def remote_state() -> str:
        return next((w["state"] for w in pool.stats()["workers"] if w["remote"]), "")

    first = remote()
    second = None
    try:
        wait_for(lambda: remote_state() == "idle" and pool.stats()["workers"][0]["state"] == "idle",
                 what="local and remote worker ready")
        threading.Thread(target=pool.embed, args=([f"stuck {i} {HANG}" for i in range(2)],), daemon=True).start()
        wait_for(lambda: remote_state() == "busy" and pool.stats()["in_flight"] == 2, what="both busy")
        first.kill()
        first.wait()
        second = remote()
        wait_for(lambda: pool.stats()["requeued"] >= 1, what="the held batch given back")
        stats = wait_for(lambda: (s := pool.stats())["in_flight"] == 2 and remote_state() == "busy" and s,
                         what="the batch sent again")
        assert stats["queued"] == 0
    finally:
        pool.close()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_bulk_workers_run_at_the_configured_niceness(make_pool):
    pool, _ = make_pool(workers=1, nice=7)
    pid = wait_for(lambda: [w["pid"] for w in pool.stats()["workers"] if w["state"] == "idle"], what="worker")[0]
    assert psutil.Process(pid).nice() == min(19, os.nice(0) + 7)
    assert psutil.Process().nice() == os.nice(0)     # the daemon (and its query encoder) is not niced


def test_one_untruncated_tokenizer_serves_counting_and_encoding(model_info):
    """`model_ids` on a non-truncating tokenizer = the truncating tokenizer's own ids."""
    from semdexd.embed.model import load_tokenizer, model_ids

    cut = load_tokenizer(model_info.tokenizer_file, model_info.max_tokens)
    whole = load_tokenizer(model_info.tokenizer_file, None)
    texts = ["", "x", words(1, 20), words(2, 300), words(3, 2000), "héllo wörld " * 400]
    assert model_ids(whole, texts, model_info.max_tokens) == [e.ids for e in cut.encode_batch(texts)]
    assert max(len(e.ids) for e in whole.encode_batch(texts)) > model_info.max_tokens
