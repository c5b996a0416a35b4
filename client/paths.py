"""Where the daemon's socket is, seen from the client.

Order: an explicit path (``--socket``), then ``$SEMDEX_SOCKET``, then the daemon's own rule
(``[server] socket`` of the config file, else ``$XDG_RUNTIME_DIR/semdex/semdexd.sock`` with the
documented fallback), computed by semdexd.config, which imports only the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def resolve_socket_path(explicit: str | os.PathLike[str] | None = None, config: str | None = None,
                        env: Mapping[str, str] | None = None) -> Path:
    """The socket path to use; raises semdexd.config.ConfigError for a broken config file."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit).expanduser()
    if env.get("SEMDEX_SOCKET"):
        return Path(env["SEMDEX_SOCKET"]).expanduser()
    from semdexd.config import load_config

    return load_config(Path(config).expanduser() if config else None, env=env).socket_path
