"""Workers from another host: tcp + CurveZMQ, only authorized worker certificates get in."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq.auth

from semdexd.embed.pool import EmbedPool

REPO = Path(__file__).resolve().parent.parent


def wait_for(pred, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificate(folder: Path, name: str) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return zmq.auth.create_certificates(str(folder), name)


def test_remote_worker_joins_and_strangers_are_refused(tmp_path, make_config, model_info):
    server_public, server_secret = certificate(tmp_path / "server", "server")
    worker_public, worker_secret = certificate(tmp_path / "worker", "worker")
    _, stranger_secret = certificate(tmp_path / "stranger", "stranger")
    (tmp_path / "server" / "authorized_workers").mkdir()
    shutil.copy(worker_public, tmp_path / "server" / "authorized_workers")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = make_config(tmp_path, pool={"workers": 1, "cache_mb": 0, "heartbeat_ms": 200, "batch_size": 4,
                                      "remote_endpoint": endpoint, "curve_secret_key_file": server_secret})
    pool = EmbedPool(cfg, model_info)
    pool.start()
    key = zmq.auth.load_certificate(server_public)[0].decode()

    def worker(name: str, secret: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "semdexd.embed.worker", "--endpoint", endpoint,
                                 "--identity", name, "--info", json.dumps(model_info.to_dict()),
                                 "--heartbeat-ms", "200", f"--server-public-key={key}", "--secret-key-file", secret],
                                cwd=REPO)

    remote, stranger = worker("R-friend", worker_secret), worker("R-stranger", stranger_secret)
    try:
        wait_for(lambda: any(w["remote"] and w["state"] == "idle" for w in pool.stats()["workers"]),
                 what="the remote worker to join")
        wait_for(lambda: sum(w["state"] == "idle" for w in pool.stats()["workers"]) == 2, what="both idle")
        results = pool.embed([f"remote text {i} with some words in it" for i in range(120)])
        assert all(r.shape == (384,) for r in results)
        workers = pool.stats()["workers"]
        assert [w for w in workers if w["remote"]][0]["texts"] > 0, workers
        assert stranger.wait(timeout=60) == 3      # never heard from the broker: "broker_silent"
        assert not any(w["remote"] and w["pid"] == stranger.pid for w in workers)
    finally:
        pool.close()
        for proc in (remote, stranger):
            if proc.poll() is None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert remote.returncode == 0                  # told to stop by the closing pool


def test_remote_endpoint_needs_keys(tmp_path, make_config, model_info):
    cfg = make_config(tmp_path, pool={"workers": 1, "remote_endpoint": f"tcp://127.0.0.1:{free_port()}"})
    pool = EmbedPool(cfg, model_info)
    with pytest.raises(ValueError, match="curve_secret_key_file"):
        pool.start()
    _, secret = certificate(tmp_path / "keys", "server")
    cfg = make_config(tmp_path, pool={"workers": 1, "remote_endpoint": f"tcp://127.0.0.1:{free_port()}",
                                      "curve_secret_key_file": secret})
    with pytest.raises(ValueError, match="authorized_workers"):
        EmbedPool(cfg, model_info).start()
