"""Helpers shared by the integration tests: isolated instances, waiting on conditions."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCE_PATH = os.pathsep.join((str(REPO), str(REPO / "client")))  # PYTHONPATH for this checkout's packages
TEST_MODELS = REPO / ".cache" / "test-models"   # converted once, shared by every test


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, what: str = "condition", interval: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Instance:
    """An isolated semdex instance: its own XDG dirs (short runtime dir for sockets) and config."""

    def __init__(self, tmp_path: Path, folders: list[Path], **sections: dict[str, Any]) -> None:
        self.tmp = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.runtime = Path(tempfile.mkdtemp(dir="/tmp", prefix="sx"))
        self.env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
                    "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
                    "XDG_RUNTIME_DIR": str(self.runtime)}
        base: dict[str, dict[str, Any]] = {
            "index": {"folders": [str(f) for f in folders], "debounce_ms": 50, "reconcile_interval_s": 0},
            "pool": {"workers": 1},
            "paths": {"models_dir": str(TEST_MODELS)},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        self.config_file = tmp_path / "config.toml"
        self.config_file.write_text(to_toml(base))

    def config(self):
        from semdexd.config import load_config
        return load_config(self.config_file, env=self.env)

    def cleanup(self) -> None:
        shutil.rmtree(self.runtime, ignore_errors=True)


@contextmanager
def running_service(inst: Instance, ready: Callable[[Any], Any] = lambda svc: True) -> Iterator[Any]:
    """A real `Service` on ``inst``'s config, yielded once its initial index is done (idle, no
    error, and ``ready(svc)``); stopped, and ``inst`` cleaned up, afterwards."""
    from semdexd.app.service import Service

    svc = Service(inst.config())
    svc.start()
    try:
        wait_for(lambda: svc.error or (svc.state() == "idle" and ready(svc)), timeout=180, what="initial index")
        assert svc.error is None, svc.error
        yield svc
    finally:
        svc.stop()
        inst.cleanup()


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {value(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# A command prefix that runs the command with SIGINT at its default, as from a terminal: a test
# runner started in the background (or by a supervisor) may pass SIGINT on ignored, and Python
# then never raises KeyboardInterrupt, so a Ctrl-C test would wait forever.
WITH_CTRL_C = [sys.executable, "-c",
               "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"]

