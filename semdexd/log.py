"""Logging setup: structlog events, rendered as JSON lines or as readable console lines.

`setup_logging` is called once by the CLI (never at import). Everything goes through the stdlib
``logging`` root handler, so third-party loggers (chromadb, watchdog, ...) land in the same place
and format as our own ``structlog.get_logger()`` events.

* ``logfile`` given (daemonised): JSON lines, rotated at 10 MB, 3 old files kept.
* no ``logfile`` (``semdexd run``): stderr; readable console lines on a terminal, JSON lines
  otherwise (journald, launchd's StandardErrorPath), so logs stay machine-readable.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog
import structlog.tracebacks

from semdexd.system.private import FILE_MODE, private_dir

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _formatter(json_lines: bool, colors: bool) -> logging.Formatter:
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json_lines:
        tracebacks = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        final += [structlog.processors.ExceptionRenderer(tracebacks), structlog.processors.JSONRenderer()]
    else:
        final.append(structlog.dev.ConsoleRenderer(colors=colors))
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=_shared_processors(), processors=final)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Opens the log (and each file after a rotation) with mode 0600 whatever the umask."""

    def _open(self) -> Any:
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors,
                    opener=lambda path, flags: os.open(path, flags, FILE_MODE))


def _handler(logfile: Path | None, stream: TextIO) -> tuple[logging.Handler, bool]:
    """The root handler and whether it wants JSON lines."""
    if logfile is not None:
        private_dir(logfile.parent)
        handler = _PrivateRotatingFileHandler(
            logfile, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
        return handler, True
    return logging.StreamHandler(stream), not stream.isatty()


def setup_logging(logfile: Path | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``logfile`` (JSON lines) or ``stream`` (default stderr)."""
    stream = sys.stderr if stream is None else stream
    handler, json_lines = _handler(logfile, stream)
    handler.setFormatter(_formatter(json_lines, colors=not json_lines))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that narrate per file ("EOF marker not found"): the file's skip reason says enough.
    for noisy in ("pypdf", "chromadb.telemetry"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str = "semdexd") -> Any:
    """A structlog logger; events render wherever `setup_logging` pointed them."""
    return structlog.get_logger(name)
