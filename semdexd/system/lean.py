"""Keeping code that the daemon never runs out of its memory.

Two dependencies import, at their own import time, packages for features semdex never uses, and
the daemon would carry them (module objects, code, their C libraries) for its whole life:

* structlog imports rich and pygments for pretty console tracebacks, and httpx (imported by
  chromadb) imports click, rich and pygments for its own command line. Both treat these as
  optional (an ImportError selects their fallback: plain tracebacks, no ``httpx`` command), so
  they are imported here while those names are blocked: measured ~4.7 MB resident.
* chromadb imports OpenTelemetry's OTLP gRPC span exporter (grpc, protobuf: ~12 MB resident)
  for tracing that runs only when ``CHROMA_OTEL_GRANULARITY`` is set. Unless it is set, chromadb
  is imported with a stand-in for that one module (`OTLP_EXPORTER`) whose exporter refuses to
  be built, with a message that says what to do.

The blocks last only for the import: a later import of any of these packages (by code that really
uses it) loads the real one. Only the ``semdexd`` commands that run a service (`run`, `start`,
`bench`, `model`) and the worker processes import structlog this way (`import_structlog`, before
anything else imports it); `import_chromadb` is how the store imports chromadb.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

UNUSED_OPTIONAL = ("rich", "pygments", "click")
OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
OTEL_SWITCH = "CHROMA_OTEL_GRANULARITY"


@contextmanager
def blocked(names: tuple[str, ...], stand_ins: dict[str, types.ModuleType] | None = None) -> Iterator[None]:
    """While the block runs, importing one of ``names`` raises ImportError and importing a key of
    ``stand_ins`` gives its module, unless that module is already imported (then nothing changes
    for it). Afterwards ``sys.modules`` holds no trace of either: later imports are real."""
    replaced: dict[str, types.ModuleType | None] = {}
    for name in names:
        if name not in sys.modules:
            replaced[name] = None
    for name, module in (stand_ins or {}).items():
        if name not in sys.modules:
            replaced[name] = module
    sys.modules.update(replaced)  # type: ignore[arg-type]  # None: the documented "import fails"
    try:
        yield
    finally:
        for name, value in replaced.items():
            if sys.modules.get(name, 0) is value:
                del sys.modules[name]


def import_structlog() -> None:
    """Import structlog without rich and pygments (idempotent; a no-op once it is imported)."""
    if "structlog" in sys.modules:
        return
    with blocked(UNUSED_OPTIONAL):
        import structlog  # noqa: F401


class _NoOtlpExporter:
    """Stands for OpenTelemetry's OTLP gRPC span exporter, which semdex does not load."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"Chroma's OpenTelemetry export is not loaded by semdex; set {OTEL_SWITCH} in the "
                           "daemon's environment before it starts to load it")


def _otlp_stand_in() -> types.ModuleType:
    module = types.ModuleType(OTLP_EXPORTER, _NoOtlpExporter.__doc__)
    module.OTLPSpanExporter = _NoOtlpExporter  # type: ignore[attr-defined]
    return module


def import_chromadb() -> Any:
    """``import chromadb`` without rich, pygments, click and (unless ``CHROMA_OTEL_GRANULARITY``
    is set) without the OTLP gRPC exporter; returns the module."""
    if "chromadb" in sys.modules:
        return sys.modules["chromadb"]
    stand_ins = {} if os.environ.get(OTEL_SWITCH) else {OTLP_EXPORTER: _otlp_stand_in()}
    with blocked(UNUSED_OPTIONAL, stand_ins):
        import chromadb
    return chromadb
