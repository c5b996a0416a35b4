"""What the daemon and its workers must not import (semdexd.system.lean), in fresh interpreters: the
daemon's command path (`semdexd.app.cli.main`), a real Chroma store on disk, every daemon module."""

import json
import os
import subprocess
import sys

from tests.support import REPO, SOURCE_PATH, Instance

# Packages the daemon never runs: pretty tracebacks, httpx's CLI, the OTLP gRPC exporter.
NEVER = ("rich", "pygments", "click", "grpc", "google.protobuf", "opentelemetry.exporter.otlp.proto.grpc")

DAEMON = """
import json, sys
from pathlib import Path
from semdexd.app.cli import main
assert main(["model", "prepare", "--config", sys.argv[1]]) == 0   # a command that runs a service's parts
from semdexd.config import load_config
from semdexd.store.vectors import VectorStore
import semdexd.app.daemon, semdexd.app.handlers, semdexd.index.pipeline, semdexd.app.service, semdexd.watch.watcher, semdexd.embed.pool
store = VectorStore(load_config(Path(sys.argv[1])), "semdex-lean")
out = {"modules": sorted(sys.modules), "count": store.count()}
if len(sys.argv) > 2:  # the exporter, as Chroma would build it for tracing
    from chromadb.telemetry.opentelemetry import OTLPSpanExporter
    try:
        OTLPSpanExporter(endpoint="localhost:4317")
        out["exporter"] = "built"
    except RuntimeError as exc:
        out["exporter"] = str(exc)
import rich, click  # code that really uses them still gets them
out["later"] = [rich.__name__, click.__name__]
print(json.dumps(out))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    full = {k: v for k, v in os.environ.items() if k != "CHROMA_OTEL_GRANULARITY"}
    full.update(env or {}, PYTHONPATH=SOURCE_PATH)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded(modules: list[str], package: str) -> list[str]:
    return [m for m in modules if m == package or m.startswith(package + ".")]


def test_daemon_leaves_out_what_it_never_runs(tmp_path):
    inst = Instance(tmp_path, [])
    out = _run(DAEMON, str(inst.config_file), "exporter", env=inst.env)
    assert out["count"] == 0 and "chromadb" in out["modules"] and "structlog" in out["modules"]
    for package in NEVER:
        assert not _loaded(out["modules"], package), f"the daemon imported {package}"
    assert "CHROMA_OTEL_GRANULARITY" in out["exporter"]
    assert out["later"] == ["rich", "click"]
    inst.cleanup()


def test_chroma_tracing_asked_for_loads_the_real_exporter(tmp_path):
    inst = Instance(tmp_path, [])
    out = _run(DAEMON, str(inst.config_file), "exporter", env={**inst.env, "CHROMA_OTEL_GRANULARITY": "none"})
    assert _loaded(out["modules"], "grpc") and out["exporter"] == "built"
    inst.cleanup()


def test_worker_leaves_out_pretty_tracebacks():
    out = _run("import json, sys\nimport semdexd.embed.worker\nprint(json.dumps({'modules': sorted(sys.modules)}))")
    assert "structlog" in out["modules"] and "ctranslate2" in out["modules"]
    for package in ("rich", "pygments", "click"):
        assert not _loaded(out["modules"], package), f"the worker imported {package}"
