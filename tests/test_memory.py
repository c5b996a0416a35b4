"""The daemon's C heap: a `Service` caps glibc's malloc arenas before its threads start
(``[server] malloc_arenas``), so that what one thread frees another reuses. Fresh interpreters:
glibc gives each new thread its own arena while under the cap, so the count is deterministic."""

import re
import subprocess
import sys

import pytest

from tests.support import REPO, SOURCE_PATH, Instance

THREADS = """
import ctypes, sys, threading
from pathlib import Path
from semdexd.config import load_config
from semdexd.app.service import Service
Service(load_config(Path(sys.argv[1])))
together = threading.Barrier(8)   # all alive at once: a finished thread's arena would be reused
def work():
    blocks = [bytearray(4096) for _ in range(4)]   # from an arena: above pymalloc, below mmap
    together.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()   # one "Arena N:" block per arena, on stderr
"""


def _arenas(tmp_path, arenas: int) -> int:
    inst = Instance(tmp_path, [], server={"malloc_arenas": arenas})
    done = subprocess.run([sys.executable, "-c", THREADS, str(inst.config_file)], capture_output=True, text=True,
                          env={"PYTHONPATH": SOURCE_PATH, **inst.env}, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    inst.cleanup()
    return len(re.findall(r"^Arena \d+:", done.stderr, re.M))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_service_caps_malloc_arenas(tmp_path):
    assert _arenas(tmp_path / "capped", 2) <= 2
    assert _arenas(tmp_path / "default", 0) > 2, "without the cap each new thread gets an arena"
