"""A reader process (`semdexd.index.readers`): ``python -m semdexd.index.reader --parent-pid N``.

Reads a pickled `Setup` from stdin, then answers each pickled ``(path, unless_hash)`` with the
`Reading` of that file on stdout (pickled, after its length), until EOF. A file that makes reading raise is answered
as failed with the error (the reader goes on); one that kills the process is the pool's to handle.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from semdexd.system.lean import import_structlog


def main(argv: list[str]) -> int:
    from semdexd.system.orphans import die_with_parent

    die_with_parent(int(argv[argv.index("--parent-pid") + 1]) if "--parent-pid" in argv else 0)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)    # a stray print goes to stderr, never into the answers
    import_structlog()
    import structlog

    from semdexd.embed.tokens import TokenCounter
    from semdexd.faults import Faults
    from semdexd.index.read import read_error, read_file
    from semdexd.index.readers import FRAME, Setup
    from semdexd.log import setup_logging

    setup_logging(None, level=os.environ.get("SEMDEX_WORKER_LOG_LEVEL", "info"))
    log = structlog.get_logger().bind(reader=os.getpid())
    requests = sys.stdin.buffer
    setup: Setup = pickle.load(requests)
    if setup.nice:
        os.nice(setup.nice)
    count = TokenCounter(setup).count
    faults = Faults.from_env()   # test-only: `prepare@NAME` kills this process reading NAME
    while True:
        try:
            path, unless_hash = pickle.load(requests)
        except EOFError:
            return 0
        faults.stage("prepare", Path(path).name)
        try:
            reading = read_file(Path(path), setup.limits, count, unless_hash)
        except Exception as exc:   # a bug met on one file: that file fails, the others go on
            log.exception("read_failed", path=path)
            reading = read_error(exc)
        data = pickle.dumps(reading, protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(FRAME.pack(len(data)) + data)
        answers.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
