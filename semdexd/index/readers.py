"""Reader processes: the files of a large (re)index read on every core.

Reading a file (`semdexd.index.read.read_file`: extract, chunk) is pure Python; in the daemon it
runs on one core and holds the GIL that searches and the writer need. While many files wait, the
prepare stage hands them to `Readers` instead: ``[index] readers`` processes (0: one per core),
each reading one file at a time with its own token counter, at the embedding workers' niceness.

A reader that dies reading a file (a crash, the out-of-memory killer) or takes longer than
`DEADLINE_S` is replaced and the file given again; a file that does it `GIVE_UP_AFTER` times is
returned as poison, so the daemon itself never stops for it. Readers exit when closed, after
`IDLE_S` without work (their memory goes back), or with the daemon (PR_SET_PDEATHSIG).

Protocol: pickles over the reader's stdin and stdout (its own prints go to stderr): first a
`Setup`, then per file ``(path, unless_hash)``, answered by a `Reading` framed by its length
(`FRAME`), read as the pipe has it (up to `DEPTH` answers may wait there).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from semdexd.index.read import Reading, ReadLimits
from semdexd.kinds import Kind

if TYPE_CHECKING:
    from semdexd.embed.model import ModelInfo

log = structlog.get_logger()

IDLE_S = 5.0           # readers stop after this long without a file (their memory goes back)
DEADLINE_S = 300.0     # a file still being read after this long is given up (its reader killed)
GIVE_UP_AFTER = 2      # deaths while reading one file before it is poison
POLL_S = 0.2           # how often a wait looks at the stop flag
FRAME = struct.Struct("<Q")   # an answer's length, before it
DEPTH = 2              # files given to a reader at once: the next waits in its pipe, so a reader
                       # does not idle while the daemon is busy with the answer before


@dataclass(frozen=True)
class Setup:
    """What a reader needs before its first file (not the whole `ModelInfo`: unpickling that
    would import the model's converters into every reader)."""

    tokenizer_file: Path
    passage_prefix: str
    limits: ReadLimits
    nice: int

    @classmethod
    def of(cls, info: ModelInfo, limits: ReadLimits, nice: int) -> Setup:
        return cls(info.tokenizer_file, info.passage_prefix, limits, nice)


@dataclass
class _Reader:
    proc: subprocess.Popen[bytes]
    items: deque[int] = field(default_factory=deque)   # indexes of the files given, the first being read
    since: float = 0.0        # when it began reading the first
    received: bytearray = field(default_factory=bytearray)   # answers read from its pipe, not yet taken
    ended: bool = False       # its pipe ended (it died) or said something that is not an answer

    @property
    def fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def receive(self) -> None:
        """Read what its pipe holds (call when it is readable)."""
        try:
            data = os.read(self.fd, 1 << 20)
        except OSError:
            data = b""
        self.received += data
        self.ended = self.ended or not data

    def answer(self) -> tuple[int, Reading] | None:
        """Its first file's index and answer, once the answer is whole (the file is then no
        longer its)."""
        if len(self.received) < FRAME.size:
            return None
        (size,) = FRAME.unpack_from(self.received)
        if len(self.received) < FRAME.size + size:
            return None
        data = bytes(self.received[FRAME.size:FRAME.size + size])
        del self.received[:FRAME.size + size]
        try:
            reading = pickle.loads(data)
        except Exception:
            reading = None
        if not isinstance(reading, Reading):
            self.ended = True
            return None
        self.since = time.monotonic()
        return self.items.popleft(), reading


class Readers:
    """A pool of ``size`` reader processes, used by one thread (the prepare stage)."""

    def __init__(self, setup: Setup, size: int, stopping: threading.Event) -> None:
        self.setup = setup
        self.size = max(1, size)
        self.stopping = stopping
        self._readers: list[_Reader] = []
        self._last_used = 0.0

    @property
    def running(self) -> bool:
        return bool(self._readers)

    def read(self, items: Sequence[tuple[str, str]]) -> Iterator[tuple[int, Reading]]:
        """``(i, reading)`` for each ``items[i] = (path, unless_hash)``, as each is read (any
        order). Ends early, without the rest, once stopping. Raises OSError if no reader can be
        started."""
        todo = deque(range(len(items)))
        deaths: dict[int, list[str]] = {}
        self._start()
        try:
            while todo or self._busy():
                if self.stopping.is_set():
                    return
                for reader in self._readers:
                    while len(reader.items) < DEPTH and todo:
                        self._give(reader, todo.popleft(), items)
                for reader, answer in self._answers():
                    if answer is not None:
                        yield answer
                        continue
                    i = reader.items[0]
                    todo.extendleft(reversed(list(reader.items)[1:]))   # given, not begun
                    deaths.setdefault(i, []).append(self._replace(reader))
                    if len(deaths[i]) < GIVE_UP_AFTER:
                        todo.appendleft(i)
                    else:
                        yield i, _poison(items[i][0], deaths[i])
        finally:
            for reader in list(self._readers):
                if reader.items:    # abandoned mid-file: its answers would be stale
                    self._replace(reader, why="abandoned")
            self._last_used = time.monotonic()

    def close_if_idle(self) -> None:
        """Stop the readers if they have had nothing to read for `IDLE_S`."""
        if self._readers and time.monotonic() - self._last_used > IDLE_S:
            log.info("readers_idle_stop", readers=len(self._readers))
            self.close()

    def close(self) -> None:
        """Stop every reader (EOF, then SIGKILL for one still busy after a second)."""
        readers, self._readers = self._readers, []
        for reader in readers:
            _end(reader.proc)

    # ------------------------------------------------------------ internals

    def _start(self) -> None:
        while len(self._readers) < self.size:
            self._readers.append(_Reader(self._spawn()))

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-m", "semdexd.index.reader", "--parent-pid", str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        assert proc.stdin is not None
        pickle.dump(self.setup, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.flush()
        if not self._readers:
            log.info("readers_started", readers=self.size, pid=proc.pid)
        return proc

    def _busy(self) -> bool:
        return any(r.items for r in self._readers)

    def _give(self, reader: _Reader, i: int, items: Sequence[tuple[str, str]]) -> None:
        if not reader.items:
            reader.since = time.monotonic()
        reader.items.append(i)
        try:
            assert reader.proc.stdin is not None
            pickle.dump(items[i], reader.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            reader.proc.stdin.flush()
        except OSError:
            pass   # it died: its pipe ends, which `_answers` reports

    def _answers(self) -> list[tuple[_Reader, tuple[int, Reading] | None]]:
        """Each busy reader with an answer (None: it died instead), waiting up to `POLL_S` for
        one; a reader past `DEADLINE_S` is killed (its end is then an answer)."""
        busy = [r for r in self._readers if r.items]
        now = time.monotonic()
        for reader in busy:
            if now - reader.since > DEADLINE_S and reader.proc.poll() is None:
                log.warning("reader_deadline", pid=reader.proc.pid, seconds=round(now - reader.since))
                reader.proc.kill()
        answers: list[tuple[_Reader, tuple[int, Reading] | None]] = []
        for attempt in range(2):
            for reader in busy:
                answer = reader.answer()
                if answer is not None or reader.ended:
                    answers.append((reader, answer))
            if answers or attempt or not busy:
                return answers
            for fd in wait([r.fd for r in busy], timeout=POLL_S):
                next(r for r in busy if r.fd == fd).receive()
        return answers

    def _replace(self, reader: _Reader, why: str = "") -> str:
        """End ``reader`` and start another in its place; returns how it ended."""
        waited = time.monotonic() - reader.since
        _end(reader.proc, at_once=True)
        ended = why or _ended(reader.proc.returncode, waited)
        log.warning("reader_lost", pid=reader.proc.pid, how=ended)
        self._readers.remove(reader)
        if not self.stopping.is_set():
            self._readers.append(_Reader(self._spawn()))
        return ended


def _end(proc: subprocess.Popen[bytes], at_once: bool = False) -> None:
    """EOF to ``proc`` (it exits), then SIGKILL if it has not within a second (at once if asked)."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(0 if at_once else 1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _ended(code: int | None, waited: float) -> str:
    if waited > DEADLINE_S:
        return f"still being read after {DEADLINE_S:g} s"
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _poison(path: str, deaths: list[str]) -> Reading:
    return Reading(Kind.POISON, f"failed: its reader process died reading it ({len(deaths)} times, "
                                f"last: {deaths[-1]}): skipped (semdex reindex {Path(path)} to retry)")
