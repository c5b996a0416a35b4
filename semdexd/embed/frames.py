"""Broker <-> worker messages: one msgpack map per ZeroMQ frame, ``t`` names the kind.

Worker -> broker:
  ``ready``  {pid, model_id, rss}           model loaded, idle (sent once after start)
  ``result`` {id, vec, n, dim, tokens, padded, rss, texts}   batch done; the worker is idle again
  ``error``  {id, msg, rss, texts[, busy]}  the batch raised (the worker is alive and idle again);
                                            with ``busy``: refused, still working on an earlier batch
  ``hb``     {rss, busy, seen, texts}       heartbeat, every heartbeat interval; ``seen`` = id of the
                                            last batch received (its result, if any, was sent before)
  ``bye``    {reason}                       leaving (stop, broker gone, parent gone)
Broker -> worker:
  ``batch``  {id, texts}                    embed these (texts already prefixed and clean)
  ``ping``   {}                             the broker is alive
  ``stop``   {}                             finish and exit (sent only to an idle worker)
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

READY, RESULT, ERROR, HEARTBEAT, BYE = "ready", "result", "error", "hb", "bye"
BATCH, PING, STOP = "batch", "ping", "stop"



class ProtocolError(ValueError):
    """A frame that is not a valid message."""


def pack(kind: str, **fields: Any) -> bytes:
    """One message frame."""
    fields["t"] = kind
    return bytes(msgpack.packb(fields, use_bin_type=True))


def unpack(frame: bytes) -> dict[str, Any]:
    """Decode a frame; `ProtocolError` if it is not a map with a string ``t``."""
    try:
        message = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("frame is not a message map")
    return message


def vectors_to_bytes(vectors: np.ndarray) -> bytes:
    """[n, dim] float32 rows as little-endian bytes."""
    return np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def vectors_from_bytes(data: bytes, n: int, dim: int) -> np.ndarray:
    """Inverse of `vectors_to_bytes`; `ProtocolError` if the size does not match."""
    if not isinstance(data, bytes) or len(data) != n * dim * 4:
        raise ProtocolError(f"vector payload of {len(data) if isinstance(data, bytes) else '?'} bytes, "
                            f"expected {n}x{dim} float32")
    return np.frombuffer(data, dtype="<f4").reshape(n, dim).astype(np.float32)
