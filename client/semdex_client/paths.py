"""Where the daemon's socket is, seen from the client.

Order: an explicit path (``--socket``), then ``$SEMDEX_SOCKET``, then ``[server] socket`` of the
config file (``--config FILE``, else the XDG one), else the daemon's default
(``$XDG_RUNTIME_DIR/semdex/semdexd.sock``, with the documented fallback).

The client needs only that one key, so it reads only that one key, leniently: a config file
the daemon would refuse (a typo in another section, invalid TOML elsewhere, an unknown key)
must not lock the CLI out. If the file cannot be read at all, or its ``[server] socket`` cannot
be made out, the default applies. Only an explicit ``--config`` naming a missing file is an error.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SECTION = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]\s*(#.*)?$")
_SOCKET = re.compile(r"""^\s*socket\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*')\s*(#.*)?$""")


def resolve_socket_path(explicit: str | os.PathLike[str] | None = None, config: str | None = None,
                        env: Mapping[str, str] | None = None) -> Path:
    """The socket path to use; raises semdexd.config.ConfigError only when an explicit
    ``config`` file does not exist."""
    from semdexd.config import ConfigError, default_paths

    env = os.environ if env is None else env
    if explicit:
        return Path(explicit).expanduser()
    if env.get("SEMDEX_SOCKET"):
        return Path(env["SEMDEX_SOCKET"]).expanduser()
    paths = default_paths(env)
    file = Path(config).expanduser() if config else paths.config_file
    if config and not file.exists():
        raise ConfigError(f"config file not found: {file}")
    socket = configured_socket(file)
    return socket if socket is not None else paths.socket


def configured_socket(file: Path) -> Path | None:
    """``[server] socket`` of ``file`` (expanded), or None if unset, empty or unreadable."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        value: Any = (tomllib.loads(text).get("server") or {}).get("socket")
    except (tomllib.TOMLDecodeError, AttributeError):
        value = _scan(text)
    if not isinstance(value, str) or not value:
        return None
    return Path(os.path.expanduser(value))


def _scan(text: str) -> str | None:
    """The ``socket = "..."`` line of the ``[server]`` table of a file that is not valid TOML."""
    section = None
    for line in text.splitlines():
        head = _SECTION.match(line)
        if head:
            section = head.group(1)
            continue
        if section == "server" and (found := _SOCKET.match(line)):
            try:
                value = tomllib.loads(f"v = {found.group(1)}")["v"]
            except tomllib.TOMLDecodeError:
                return None
            return value if isinstance(value, str) else None
    return None
