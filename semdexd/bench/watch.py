"""`semdexd bench watch [--folders N] [--ignored N] [--seconds S] [--json]`: what watching
a tree with big ignored folders costs.

Generates a tree of ``--folders`` admitted folders (a few notes among them) plus a
``node_modules`` of ``--ignored`` folders and a ``.cache`` folder, indexes it with the real
Service (one worker), waits until the watch count settles, then reports for this process: the
inotify watches set (`kernel_watches`), the threads (Python and OS), and the CPU seconds the idle
daemon spends over ``--seconds`` while another process writes into the ignored ``.cache`` folder
(about 250 writes a second, 4 KB each). It uses only the Service API, so the same file measures
an older checkout (run it as ``python -m semdexd.bench.watch`` with that checkout on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from semdexd.bench.common import bench_config, until_idle
from semdexd.config import Config, default_paths

WRITER = """
import os, sys, time
folder, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    with open(os.path.join(folder, f"blob{i % 200}.bin"), "wb") as f:
        f.write(os.urandom(4096))
    i += 1
    time.sleep(0.002)
print(i)
"""


def generate(root: Path, folders: int, ignored: int) -> None:
    """``folders`` admitted folders (40 per parent, a note in every 100th), ``ignored`` folders in
    ``node_modules`` (two levels), and a ``.cache``."""
    for i in range(folders):
        folder = root / "docs" / f"g{i // 40:03}" / f"d{i:05}"
        folder.mkdir(parents=True)
        if i % 100 == 0:
            (folder / "note.md").write_text(f"# Note {i}\n\nA note about folder {i} and its watcher.\n")
    for i in range(ignored):
        (root / "node_modules" / f"p{i // 2:05}" / f"lib{i % 2}").mkdir(parents=True, exist_ok=True)
    (root / ".cache").mkdir()


def kernel_watches() -> list[int]:
    """The inode of every inotify watch this process holds: the ``inotify wd:`` lines of all its
    inotify fds in /proc/self/fdinfo."""
    inodes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                lines = [line for line in f if line.startswith("inotify wd:")]
        except OSError:
            continue
        for line in lines:
            field = next(part for part in line.split() if part.startswith("ino:"))
            inodes.append(int(field[4:], 16))
    return inodes


def inotify_watches() -> int:
    """Watches held by this process."""
    return len(kernel_watches())


def settled_watches(quiet_s: float = 3.0, window_s: float = 60.0) -> dict[str, Any]:
    """The watch count once it has not changed for ``quiet_s``, or, when it keeps changing for
    ``window_s`` (watchdog 7.1's recursive watch on a large tree: its own walk fills the kernel
    queue, the overflow makes it drop and re-add every watch, and so on), the range seen."""
    start = time.monotonic()
    count, since, low, high = inotify_watches(), start, None, 0
    while True:
        time.sleep(0.2)  # bench only: polling a count with a deadline
        now = time.monotonic()
        current = inotify_watches()
        low, high = min(current, low if low is not None else current), max(current, high)
        if current != count:
            count, since = current, now
        elif now - since >= quiet_s:
            return {"inotify_watches": count, "watches_settled": True}
        if now - start >= window_s:
            return {"inotify_watches": count, "watches_settled": False, "watches_min": low, "watches_max": high}


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def measure(cfg: Config, folders: int, ignored: int, seconds: float) -> dict[str, Any]:
    """Index a generated tree, let the watches settle, then measure one idle period with a
    writer in the ignored ``.cache``."""
    from semdexd.app.service import Service

    work = Path(tempfile.mkdtemp(prefix="semdex-bench-watch-"))
    corpus = work / "tree"
    generate(corpus, folders, ignored)
    bcfg = bench_config(cfg, [corpus], work, workers=1)
    paths = bcfg.paths
    threads_before = (threading.active_count(), os_threads())
    svc = Service(bcfg)
    try:
        start = time.perf_counter()
        svc.start()
        until_idle(svc, 600, 0.05)
        watches = settled_watches()
        started_s = time.perf_counter() - start
        py_threads, threads = threading.active_count(), os_threads()
        cpu0 = os.times()
        writer = subprocess.run([sys.executable, "-c", WRITER, str(corpus / ".cache"), str(seconds)],
                                capture_output=True, text=True, check=True)
        cpu1 = os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    finally:
        svc.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(paths.runtime_dir, ignore_errors=True)
    return {"folders": folders, "ignored_folders": ignored, **watches,
            "python_threads": py_threads - threads_before[0], "os_threads": threads - threads_before[1],
            "start_to_watching_s": round(started_s, 2), "writes_into_cache": int(writer.stdout.strip()),
            "idle_cpu_s": round(cpu, 3), "seconds": seconds}


def main(argv: list[str], cfg: Config | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semdexd bench watch")
    parser.add_argument("--folders", type=int, default=2000)
    parser.add_argument("--ignored", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--models-dir", type=Path, default=Path(".cache/test-models"),
                        help="converted models (without a config: the test model cache)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if cfg is None:
        cfg = Config(paths=replace(default_paths(dict(os.environ)), models_dir=args.models_dir.resolve()))
    out = measure(cfg, args.folders, args.ignored, args.seconds)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
