"""The worker pool with the real model, real processes and real ZeroMQ sockets.

Nothing here asserts a duration: every wait is on a condition with a deadline.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from semdexd.embed.encoder import Encoder
from semdexd.embed.model import ModelInfo
from semdexd.embed.pool import EmbedFailure, EmbedPool, PoolClosedError
from semdexd.faults import POISON_ENV
from tests.support import SOURCE_PATH, wait_for

REPO = Path(__file__).resolve().parent.parent


def prose(i: int, words: int = 120) -> str:
    """A distinct text of roughly ``words`` tokens."""
    source = inspect.getsource(textwrap).split()
    start = (i * 37) % (len(source) - words)
    return f"chunk {i}: " + " ".join(source[start:start + words])


@pytest.fixture(scope="module")
def reference_encoder(model_info: ModelInfo) -> Encoder:
    return Encoder(model_info)


def assert_vectors_match(results: list, texts: list[str], encoder: Encoder) -> None:
    assert len(results) == len(texts)
    assert all(isinstance(r, np.ndarray) and r.dtype == np.float32 and r.shape == (384,) for r in results)
    expected = np.concatenate([encoder.encode(texts[i:i + 8]).vectors for i in range(0, len(texts), 8)])
    cos = (np.stack(results) * expected).sum(1)
    assert cos.min() >= 0.999, int(cos.argmin())


def worker_pids(pool: EmbedPool) -> list[int]:
    return [w["pid"] for w in pool.stats()["workers"] if w["state"] in ("idle", "busy")]


def test_1000_texts_through_two_workers_in_order(make_pool, reference_encoder):
    pool, _ = make_pool(workers=2, batch_size=8)
    texts = [f"note {i}: the {['red', 'green', 'blue', 'old'][i % 4]} file number {i * 7919 % 1000}"
             for i in range(1000)]
    results = pool.embed(texts)
    sample = list(range(0, 1000, 25)) + [999]
    assert len(results) == 1000
    assert_vectors_match([results[i] for i in sample], [texts[i] for i in sample], reference_encoder)
    stats = pool.stats()
    assert stats["texts"] == 1000 and stats["failed"] == 0
    assert all(w["texts"] > 0 for w in stats["workers"]), stats["workers"]   # both workers took work
    assert 1.0 <= stats["padding_ratio"] < 1.1
    json.dumps(stats)


def test_many_threads_at_once_each_get_their_own_vectors(make_pool, reference_encoder):
    pool, _ = make_pool(workers=2, batch_size=4)
    texts = {t: [f"thread {t} line {i} says {i * t}" for i in range(30)] for t in range(8)}
    out: dict[int, list] = {}
    threads = [threading.Thread(target=lambda t=t: out.__setitem__(t, pool.embed(texts[t], priority=t % 2 == 0)))
               for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for t, results in out.items():
        assert_vectors_match(results, texts[t], reference_encoder)
    assert len(out) == 8 and pool.stats()["texts"] == 240


def test_kill_9_worker_mid_batch_loses_nothing(make_pool, reference_encoder):
    pool, _ = make_pool(workers=2, batch_size=8)
    texts = [prose(i, 200) for i in range(48)]
    out: dict[str, Any] = {}
    job = threading.Thread(target=lambda: out.setdefault("results", pool.embed(texts)))
    job.start()
    killed = 0
    for _attempt in range(3):   # a kill can land just after the batch finished: then try again
        stats = wait_for(lambda: (s := pool.stats()) and any(w["state"] == "busy" for w in s["workers"]) and s,
                         what="a busy worker")
        pid = next(w["pid"] for w in stats["workers"] if w["state"] == "busy")
        os.kill(pid, signal.SIGKILL)
        killed += 1
        wait_for(lambda: pool.stats()["crashes"] >= killed, what="the broker noticing the death")
        if pool.stats()["requeued"] >= 1 or not job.is_alive():
            break
    job.join(timeout=300)
    stats = pool.stats()
    assert stats["requeued"] >= 1, stats
    assert_vectors_match(out["results"], texts, reference_encoder)
    assert stats["texts"] == len(texts) and stats["failed"] == 0   # each result accepted exactly once
    assert stats["restarts"] >= 1 and len(worker_pids(pool)) == 2
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_hung_worker_misses_heartbeats_and_its_batch_is_redone(make_pool, reference_encoder):
    pool, cfg = make_pool(workers=2, batch_size=8)    # heartbeat 200 ms x 10 misses = 2 s of silence
    texts = [prose(i, 200) for i in range(32)]
    out: dict[str, Any] = {}
    job = threading.Thread(target=lambda: out.setdefault("results", pool.embed(texts)))
    job.start()
    stats = wait_for(lambda: (s := pool.stats()) and any(w["state"] == "busy" for w in s["workers"]) and s,
                     what="a busy worker")
    pid = next(w["pid"] for w in stats["workers"] if w["state"] == "busy")
    os.kill(pid, signal.SIGSTOP)                       # alive but silent
    try:
        job.join(timeout=300)
        assert_vectors_match(out["results"], texts, reference_encoder)
        assert pool.stats()["crashes"] >= 1 and pid not in worker_pids(pool)
        wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                 what="the hung worker to be killed")
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGCONT)


def test_poison_text_is_isolated_and_the_rest_succeed(make_pool, reference_encoder, monkeypatch):
    monkeypatch.setenv(POISON_ENV, "<<POISON>>")
    pool, _ = make_pool(workers=2, batch_size=8)
    texts = [f"ordinary text number {i}" for i in range(20)]
    texts[13] = "this one <<POISON>> crashes the worker"
    results = pool.embed(texts)
    assert isinstance(results[13], EmbedFailure) and "crashed the model worker" in results[13].reason
    assert not results[13].transient  # the text's own fault: recorded, not retried
    good = [i for i in range(20) if i != 13]
    assert_vectors_match([results[i] for i in good], [texts[i] for i in good], reference_encoder)
    stats = pool.stats()
    assert stats["failed"] == 1 and stats["splits"] >= 1
    assert pool.embed(["still serving"])[0].shape == (384,)


def test_restart_after_n_texts_happens_between_batches_and_loses_nothing(make_pool, reference_encoder):
    pool, _ = make_pool(workers=1, batch_size=4, max_texts_per_worker=10)
    first_pid = wait_for(lambda: worker_pids(pool), what="worker start")[0]
    texts = [f"document {i} talks about topic {i % 5}" for i in range(60)]
    results = pool.embed(texts)
    assert_vectors_match(results, texts, reference_encoder)
    stats = pool.stats()
    assert stats["retired"] >= 3, stats
    assert stats["crashes"] == 0 and stats["requeued"] == 0   # no batch was ever killed in flight
    assert stats["workers"][0]["restarts"] == stats["retired"]
    new_pid = wait_for(lambda: worker_pids(pool), what="replacement worker")[0]
    assert new_pid != first_pid
    wait_for(lambda: not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE,
             what="the retired worker to exit")


def test_query_goes_ahead_of_queued_bulk_work(make_pool):
    pool, _ = make_pool(workers=1, batch_size=2, query_encoder=False)   # the workers' priority lane
    bulk_texts = [prose(i, 100) for i in range(40)]
    bulk = threading.Thread(target=pool.embed, args=(bulk_texts,))
    bulk.start()
    wait_for(lambda: pool.stats()["in_flight"] > 0 and pool.stats()["queued_batches"] >= 10, what="bulk queued")
    answer = pool.embed(["where is the config file?"], kind="query", priority=True)
    queued_after = pool.stats()["queued_batches"]
    assert answer[0].shape == (384,)
    assert bulk.is_alive() and queued_after > 0   # the query did not wait for the bulk job
    bulk.join(timeout=300)


def test_cache_answers_repeats_and_survives_a_new_pool(make_config, tmp_path, model_info):
    cfg = make_config(tmp_path, pool={"workers": 1, "cache_mb": 16})
    texts = ["licence header", "same boilerplate", "licence header", "unique text"]
    pool = EmbedPool(cfg, model_info)
    pool.start()
    try:
        first = pool.embed(texts)
        assert pool.stats()["texts"] == 3                        # duplicates embedded once
        again = pool.embed(texts)
        assert pool.stats()["texts"] == 3 and pool.stats()["cache"]["hits"] >= 3
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
    finally:
        pool.close()
    pool = EmbedPool(cfg, model_info)
    pool.start()
    try:
        third = pool.embed(texts)
        stats = pool.stats()
        assert stats["texts"] == 0 and stats["cache"]["hits"] == 3 and stats["cache"]["entries"] == 3
        assert all(np.array_equal(a, b) for a, b in zip(first, third))
    finally:
        pool.close()


def test_query_prefix_and_bad_inputs(make_pool):
    pool, _ = make_pool(workers=1)
    results = pool.embed(["ok", 123, "lone \udcff surrogate", "", "x" * 20000])  # type: ignore[list-item]
    assert isinstance(results[1], EmbedFailure) and "string" in results[1].reason and not results[1].transient
    assert all(isinstance(results[i], np.ndarray) for i in (0, 2, 3, 4))
    with pytest.raises(ValueError):
        pool.embed(["x"], kind="document")  # type: ignore[arg-type]
    assert pool.embed([]) == []


def test_timeout_and_closed_pool(make_pool):
    pool, _ = make_pool(workers=1, batch_size=2)
    late = pool.embed([prose(i, 200) for i in range(8)], timeout=0.001)
    assert any(isinstance(r, EmbedFailure) and "timed out" in r.reason and r.transient for r in late)
    # the timed-out call's batches must be gone first, so "queued" below counts only the new call
    wait_for(lambda: pool.stats()["queued"] == 0 and pool.stats()["in_flight"] == 0, what="timed-out work dropped")
    out: dict[str, Any] = {}
    waiting = threading.Thread(target=lambda: out.setdefault("r", pool.embed([prose(i, 200) for i in range(40)])))
    waiting.start()
    wait_for(lambda: pool.stats()["queued"] > 0, what="queued work")
    pids = worker_pids(pool)
    pool.close()
    waiting.join(timeout=60)
    assert any(isinstance(r, EmbedFailure) and "pool closed" in r.reason and r.transient for r in out["r"])
    with pytest.raises(PoolClosedError):
        pool.embed(["after close"])
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


DAEMON = """
import json, sys
from semdexd.config import load_config
from semdexd.embed.model import prepare_model
from semdexd.embed.pool import EmbedPool
cfg = load_config(__import__("pathlib").Path(sys.argv[1]), env=json.loads(sys.argv[2]))
pool = EmbedPool(cfg, prepare_model(cfg))
pool.start()
pool.embed(["warm up"])
print("PIDS", json.dumps([w["pid"] for w in pool.stats()["workers"]]), flush=True)
while True:
    pool.embed(["a long text about nothing in particular " * 40] * 8 + [str(i) for i in range(8)])
"""


def test_kill_9_of_the_daemon_leaves_no_worker_behind(tmp_path, model_info):
    runtime = Path(__import__("tempfile").mkdtemp(prefix="sx", dir="/tmp"))
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_RUNTIME_DIR": str(runtime)}
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nmodels_dir = "{model_info.ct2_dir.parent}"\n[pool]\nworkers = 2\ncache_mb = 0\n')
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(config), json.dumps(env)], stdout=subprocess.PIPE,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": SOURCE_PATH})
    try:
        line = ""
        while not line.startswith("PIDS "):    # skip log lines
            line = daemon.stdout.readline().decode()   # type: ignore[union-attr]
            assert line, "the daemon exited early"
        pids = json.loads(line[5:])
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        daemon.kill()
        daemon.wait()

        def gone(pid: int) -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_for(lambda: all(gone(p) for p in pids), timeout=30, what="workers to die with the daemon")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        __import__("shutil").rmtree(runtime, ignore_errors=True)
