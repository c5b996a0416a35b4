"""The remote worker endpoint: a second ROUTER on tcp, encrypted and authenticated with CurveZMQ.

``[pool] remote_endpoint = "tcp://0.0.0.0:5555"`` needs ``curve_secret_key_file``: the broker's
certificate (``zmq.auth.create_certificates`` format, public + secret key). Workers are allowed
in only if their public certificate (``*.key``) is in the folder ``authorized_workers/`` beside
that file; any other client is refused by the ZAP handler, so file text never leaves the machine
in clear or to a stranger. A remote worker runs
``python -m semdexd.embed.worker --endpoint tcp://HOST:5555 --identity NAME
--server-public-key=KEY --secret-key-file worker.key_secret`` with the same model configured.
"""

from __future__ import annotations

from pathlib import Path

import zmq
from zmq.auth import load_certificate
from zmq.auth.thread import ThreadAuthenticator

AUTHORIZED_DIR = "authorized_workers"


def authorized_dir(secret_key_file: Path) -> Path:
    """Where the public certificates of the allowed workers live."""
    return secret_key_file.parent / AUTHORIZED_DIR


def bind_remote(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, secret_key_file: str) -> tuple[zmq.Socket[bytes], ThreadAuthenticator]:
    """Bind the CurveZMQ ROUTER at ``endpoint``; ValueError with a clear message if misconfigured."""
    if not secret_key_file:
        raise ValueError("[pool] remote_endpoint needs curve_secret_key_file (workers on other hosts must be "
                         "authenticated and the text they receive encrypted)")
    if not zmq.has("curve"):
        raise ValueError("[pool] remote_endpoint: this libzmq was built without CURVE support")
    key_file = Path(secret_key_file).expanduser()
    try:
        public, secret = load_certificate(str(key_file))
    except (OSError, ValueError) as exc:
        raise ValueError(f"[pool] curve_secret_key_file {key_file}: {exc}") from None
    if secret is None:
        raise ValueError(f"[pool] curve_secret_key_file {key_file}: holds no secret key")
    allowed = authorized_dir(key_file)
    if not allowed.is_dir():
        raise ValueError(f"[pool] remote workers: put their public certificates (*.key) in {allowed}")
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(allowed))
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.curve_server = True
    sock.curve_publickey, sock.curve_secretkey = public, secret
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        auth.stop()
        raise ValueError(f"[pool] remote_endpoint {endpoint}: {exc}") from None
    return sock, auth
