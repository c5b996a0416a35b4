"""The embedding worker process: ``python -m semdexd.embed.worker --endpoint ... --info JSON``.

A ZeroMQ DEALER that holds one `Encoder`. The main thread owns the socket: it receives batches,
answers heartbeats and notices the broker or the parent going away; the model runs in a second
thread so that heartbeats continue during a long batch. It exits when told to (``stop``), when the
broker has been silent for ``heartbeat_ms * heartbeat_misses``, or when its parent dies (Linux:
PR_SET_PDEATHSIG=SIGKILL; elsewhere: the parent pid changes).

Test-only hooks (`semdexd.faults`): ``SEMDEX_TEST_POISON=<marker>`` makes a batch with that marker
exit the worker (a text that crashes the model); ``SEMDEX_TEST_HANG=<marker>`` blocks the compute
thread for good while the main thread keeps its heartbeat (a model call that never returns).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psutil
import structlog
import zmq

from semdexd.embed import frames as p
from semdexd.embed.encoder import Encoded, Encoder, check_output
from semdexd.embed.errors import ModelError
from semdexd.embed.model import ModelInfo
from semdexd.faults import POISON_EXIT, Faults
from semdexd.system.orphans import die_with_parent

MODEL_WRONG_EXIT = 78   # the model's output failed `check_output` (like EX_CONFIG: retrying will not help)


@dataclass
class Options:
    endpoint: str
    identity: str
    info: ModelInfo
    threads: int
    heartbeat_ms: int
    heartbeat_misses: int
    parent_pid: int                 # 0 = remote worker (no parent to watch)
    nice: int = 0                   # added to this process's CPU niceness at start
    server_public_key: str = ""     # CurveZMQ: the broker's public key (z85)
    secret_key_file: str = ""       # CurveZMQ: this worker's certificate (zmq.auth format)


def _send(sock: zmq.Socket[bytes], frame: bytes) -> None:
    """Send without ever blocking: if the broker is gone, the frame does not matter."""
    try:
        sock.send(frame, flags=zmq.NOBLOCK)
    except zmq.ZMQError:
        pass


def _rss_mb(proc: psutil.Process) -> float:
    return round(float(proc.memory_info().rss) / 2**20, 1)


class Worker:
    """The worker's event loop; `run` returns the process exit code."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.log = structlog.get_logger().bind(worker=opts.identity, pid=os.getpid())
        self.proc = psutil.Process()
        self.texts = 0
        self.faults = Faults.from_env()
        self.current: tuple[Any, Future[Encoded]] | None = None
        self.last_batch: Any = None     # id of the last batch received (lets the broker spot a lost result)
        self.wake_r, self.wake_w = os.pipe()

    def _socket(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.opts.identity.encode())
        sock.setsockopt(zmq.LINGER, 1000)
        if self.opts.server_public_key:
            from zmq.auth import load_certificate

            public, secret = load_certificate(self.opts.secret_key_file)
            sock.curve_publickey, sock.curve_secretkey = public, secret
            sock.curve_serverkey = self.opts.server_public_key.encode()
        sock.connect(self.opts.endpoint)
        return sock

    def run(self) -> int:
        if self.opts.nice:
            os.nice(self.opts.nice)  # bulk work yields the CPU to the daemon's queries
        encoder = Encoder(self.opts.info, threads=self.opts.threads)
        try:
            check_output(encoder)
        except ModelError as exc:  # wrong vectors here: better no worker than a useless index
            self.log.error("worker_model_wrong", reason=str(exc))
            return MODEL_WRONG_EXIT
        ctx = zmq.Context()
        sock = self._socket(ctx)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        try:
            _send(sock, p.pack(p.READY, pid=os.getpid(), model_id=self.opts.info.model_id, rss=_rss_mb(self.proc)))
            self.log.info("worker_ready", model=self.opts.info.model_id)
            return self._loop(sock, encoder, pool)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            sock.close(linger=500)
            ctx.term()

    def _loop(self, sock: zmq.Socket[bytes], encoder: Encoder, pool: ThreadPoolExecutor) -> int:
        beat = self.opts.heartbeat_ms / 1000
        silence_limit = beat * self.opts.heartbeat_misses
        last_heard = last_beat = time.monotonic()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        while True:
            events = dict(poller.poll(timeout=int(beat * 1000)))
            now = time.monotonic()
            if self.wake_r in events:
                os.read(self.wake_r, 64)
            if sock in events:
                while sock.poll(0):
                    last_heard = now
                    reason = self._on_message(sock.recv(), sock, encoder, pool)
                    if reason:
                        return self._leave(sock, reason, 0)
            self._send_result_if_done(sock)
            if now - last_beat >= beat:
                _send(sock, p.pack(p.HEARTBEAT, rss=_rss_mb(self.proc), busy=self.current is not None,
                                      seen=self.last_batch, texts=self.texts))
                last_beat = now
            if now - last_heard > silence_limit:
                return self._leave(sock, "broker_silent", 3)
            if self.opts.parent_pid and os.getppid() != self.opts.parent_pid:
                return self._leave(sock, "parent_gone", 4)

    def _on_message(self, frame: bytes, sock: zmq.Socket[bytes], encoder: Encoder, pool: ThreadPoolExecutor) -> str:
        """Handle one broker message; returns a reason to exit, or ""."""
        try:
            message = p.unpack(frame)
        except p.ProtocolError as exc:
            self.log.warning("bad_frame", error=str(exc))
            return ""
        kind = message["t"]
        if kind == p.STOP:
            return "stop"
        if kind == p.BATCH:
            self._start_batch(message, sock, encoder, pool)
        return ""

    def _start_batch(self, message: dict[str, Any], sock: zmq.Socket[bytes], encoder: Encoder, pool: ThreadPoolExecutor) -> None:
        batch_id, texts = message.get("id"), message.get("texts")
        if self.current is not None:
            _send(sock, p.pack(p.ERROR, id=batch_id, msg="worker busy", busy=True, rss=_rss_mb(self.proc),
                               texts=self.texts))
            return
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            _send(sock, p.pack(p.ERROR, id=batch_id, msg="malformed batch", rss=_rss_mb(self.proc), texts=self.texts))
            return
        self.last_batch = batch_id
        if self.faults.kills_worker(texts):
            os._exit(POISON_EXIT)
        if self.faults.hangs_worker(texts):
            future: Future[Encoded] = pool.submit(threading.Event().wait)  # type: ignore[arg-type]
        else:
            future = pool.submit(encoder.encode, texts)
        future.add_done_callback(lambda _f: os.write(self.wake_w, b"x"))
        self.current = (batch_id, future)

    def _send_result_if_done(self, sock: zmq.Socket[bytes]) -> None:
        if self.current is None or not self.current[1].done():
            return
        batch_id, future = self.current
        self.current = None
        try:
            done = future.result()
        except Exception as exc:  # the model or tokenizer refused this batch
            self.log.warning("batch_failed", batch=batch_id, error=repr(exc))
            _send(sock, p.pack(p.ERROR, id=batch_id, msg=f"{type(exc).__name__}: {exc}", rss=_rss_mb(self.proc),
                             texts=self.texts))
            return
        self.texts += len(done.vectors)
        _send(sock, p.pack(p.RESULT, id=batch_id, vec=p.vectors_to_bytes(done.vectors), n=len(done.vectors),
                         dim=int(done.vectors.shape[1]), tokens=done.tokens, padded=done.padded,
                         rss=_rss_mb(self.proc), texts=self.texts))

    def _leave(self, sock: zmq.Socket[bytes], reason: str, code: int) -> int:
        self.log.info("worker_exit", reason=reason, texts=self.texts)
        _send(sock, p.pack(p.BYE, reason=reason))
        return code


def _model_info(info_json: str, config_file: str) -> ModelInfo:
    """The model to load: given as JSON by a local broker, or prepared from this host's config."""
    if info_json:
        return ModelInfo.from_dict(json.loads(info_json))
    from pathlib import Path

    from semdexd.config import load_config
    from semdexd.embed.model import prepare_model

    return prepare_model(load_config(Path(config_file) if config_file else None))


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m semdexd.embed.worker", description="semdex embedding worker")
    parser.add_argument("--endpoint", required=True, help="the broker: ipc://... (local) or tcp://HOST:PORT")
    parser.add_argument("--identity", default="", help="unique name (default R-<host>-<pid>)")
    parser.add_argument("--info", default="", help="ModelInfo as JSON (ModelInfo.to_dict); set by a local broker")
    parser.add_argument("--config", default="", help="without --info: this host's semdex config (default: XDG)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--heartbeat-ms", type=int, default=1000)
    parser.add_argument("--heartbeat-misses", type=int, default=10)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--nice", type=int, default=0, help="add this to the CPU niceness (0-19)")
    parser.add_argument("--server-public-key", default="",
                        help="CurveZMQ: the broker's public key (z85); write --server-public-key=KEY: "
                             "a key may begin with '-'")
    parser.add_argument("--secret-key-file", default="", help="CurveZMQ: this worker's certificate")
    args = parser.parse_args(argv)
    return Options(endpoint=args.endpoint, identity=args.identity or f"R-{socket.gethostname()}-{os.getpid()}",
                   info=_model_info(args.info, args.config), threads=args.threads,
                   heartbeat_ms=args.heartbeat_ms, heartbeat_misses=args.heartbeat_misses,
                   parent_pid=args.parent_pid, nice=args.nice, server_public_key=args.server_public_key,
                   secret_key_file=args.secret_key_file)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parent = next((int(v) for k, v in zip(argv, argv[1:]) if k == "--parent-pid"), 0)
    die_with_parent(parent)  # before anything slow, so a dying daemon never leaves us behind
    opts = parse_args(argv)
    from semdexd.log import setup_logging

    setup_logging(None, level=os.environ.get("SEMDEX_WORKER_LOG_LEVEL", "info"))
    return Worker(opts).run()


if __name__ == "__main__":
    sys.exit(main())
