"""The daemon's life cycle: pidfile lock, serving until a signal, daemonising, stopping.

* `Pidfile`: an exclusive ``flock`` on ``cfg.paths.pidfile`` held for the daemon's lifetime; the
  kernel drops it when the process dies, so a stale file never blocks a restart.
* `serve`: the foreground life (``semdexd run``): lock, ``Service.start``, socket server, then
  wait for signals. SIGTERM/SIGINT: stop accepting, ``service.stop()``, close, remove
  socket and pidfile. SIGHUP: reload the config; a bad new config is logged and ignored.
  A second SIGTERM/SIGINT while draining exits at once (status 1).
  Hard exits that need no Python thread to run (faulthandler's C watchdog, so they work even if
  a native call never returns or holds the GIL): a stop that takes longer than
  ``[server] stop_timeout_s`` dumps every thread's stack to stderr and exits 1 (within the unit's
  TimeoutStopSec = 90 s); a main thread that gets no GIL for ``freeze_exit_s`` (the process is
  frozen) does the same, so the service manager restarts it. SIGUSR1 dumps every stack.
* `start_background`: fork, daemonise with python-daemon (JSON logs to ``cfg.paths.logfile``,
  raw stderr/faulthandler to ``semdexd.stderr`` beside it), and return once the socket answers
  ``version`` -- or raise `StartFailed` with the log lines that say why.
* `stop_daemon` / `probe`: SIGTERM the pidfile's process and wait; report what is running.
"""

from __future__ import annotations

import faulthandler
import fcntl
import json
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from semdexd.api.rpc import call_json
from semdexd.config import Config, ConfigError
from semdexd.system.private import private_dir, secure_paths

if TYPE_CHECKING:
    from semdexd.app.service import Service

ReadyCallback = Callable[[int], None]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WATCH_TICK_S = 5.0         # how often the main thread re-arms the freeze watchdog


class AlreadyRunning(RuntimeError):
    """The pidfile is locked by another live daemon."""

    def __init__(self, pid: int | None, pidfile: Path) -> None:
        super().__init__(f"already running (pid {pid or '?'}, pidfile {pidfile})")
        self.pid = pid


class StartFailed(RuntimeError):
    """`semdexd start` could not bring a daemon up; the message includes the log's last errors."""


# ---------------------------------------------------------------- pidfile


def read_pid(path: Path) -> int | None:
    """The pid written in ``path``, or None if it is missing or unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class Pidfile:
    """An exclusive lock on a pidfile that holds our pid. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock the pidfile and write our pid; raises AlreadyRunning if another process holds it."""
        private_dir(self.path.parent)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise AlreadyRunning(read_pid(self.path), self.path) from None
            if self._same_file(fd):
                break
            os.close(fd)  # the file was unlinked by an exiting daemon after we opened it: retry
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def _same_file(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the pidfile (if still ours) and drop the lock."""
        if self._fd is None:
            return
        if self._same_file(self._fd):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Pidfile:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------- signals


class SignalInbox:
    """Turns SIGTERM/SIGINT/SIGHUP into values `wait` returns, via ``signal.set_wakeup_fd``.

    Must be entered in the main thread. Signals arriving while the daemon is busy are queued.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._old: dict[int, Any] = {}
        self._old_fd = -1

    def __enter__(self) -> SignalInbox:
        self._w.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._note)
        return self

    @staticmethod
    def _note(signum: int, frame: object) -> None:
        """Python-level no-op: the C handler already wrote ``signum`` to the wake-up socket."""

    def wait(self, tick: Callable[[], None] | None = None, tick_s: float = WATCH_TICK_S) -> int:
        """Block until a signal arrives; return its number. ``tick`` runs every ``tick_s``."""
        while True:
            if tick is not None:
                tick()
            if not select.select([self._r], [], [], tick_s if tick is not None else None)[0]:
                continue
            data = self._r.recv(1)
            if data:
                return data[0]

    def force_exit_on_repeat(self, log: Any) -> None:
        """From now on a stop signal exits at once (a second Ctrl-C while draining)."""
        def _force(signum: int, frame: object) -> NoReturn:
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(1)
        for sig in STOP_SIGNALS:
            signal.signal(sig, _force)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(self._old_fd)
        self._r.close()
        self._w.close()


# ---------------------------------------------------------------- foreground life


def _reload(service: Service, cfg: Config, reload_config: Callable[[], Config], log: Any) -> None:
    try:
        new_cfg = reload_config()
    except ConfigError as exc:
        log.error("reload_failed", error=str(exc), kept="previous config")
        service.reload_error = str(exc)  # shown by `status` until a reload succeeds
        return
    if new_cfg.socket_path != cfg.socket_path:
        log.warning("socket_change_needs_restart", old=str(cfg.socket_path), new=str(new_cfg.socket_path))
    try:
        service.reload(new_cfg)
    except Exception as exc:
        log.exception("reload_failed", kept="previous config")
        service.reload_error = f"{type(exc).__name__}: {exc}"
        return
    service.reload_error = None
    log.info("config_reloaded", folders=[str(f) for f in new_cfg.index.folders])


def serve(cfg: Config, reload_config: Callable[[], Config], log: Any,
          notify_ready: ReadyCallback | None = None) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT; see the module docstring.

    Raises AlreadyRunning or SocketInUse before serving if another daemon owns the pidfile/socket,
    PrivateDirError if the data or state dir cannot be made private (another user owns it).
    """
    from semdexd.app.handlers import Api
    from semdexd.app.service import Service
    from semdexd.server import Server

    secure_paths((cfg.paths.data_dir, cfg.paths.state_dir), log)  # 0700/0600, see semdexd.system.private
    _enable_stack_dumps()
    with SignalInbox() as inbox, Pidfile(cfg.paths.pidfile):
        service = Service(cfg)
        log.info("starting", pid=os.getpid(), folders=[str(f) for f in cfg.index.folders])
        service.start()
        server = Server(cfg.socket_path, Api(service).handlers(), max_request_bytes=cfg.server.max_request_bytes, log=log,
                        max_connections=cfg.server.max_connections, request_timeout_s=cfg.server.request_timeout_s,
                        idle_timeout_s=cfg.server.idle_timeout_s, hub=service.events)
        try:
            server.start()
            if notify_ready is not None:
                notify_ready(os.getpid())
            log.info("ready", pid=os.getpid(), socket=str(cfg.socket_path))
            _wait_for_stop(inbox, service, cfg, reload_config, log)
            inbox.force_exit_on_repeat(log)
        finally:
            faulthandler.dump_traceback_later(cfg.server.stop_timeout_s, exit=True)  # hard deadline
            server.stop_accepting()
            _stop_service(service, log)
            server.close()
    faulthandler.cancel_dump_traceback_later()
    log.info("stopped")


def _enable_stack_dumps() -> None:
    """SIGUSR1 dumps every thread's stack to stderr (works while the process is frozen)."""
    if not faulthandler.is_enabled():
        faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def _freeze_watchdog(cfg: Config) -> Callable[[], None]:
    """What re-arms the C-level watchdog: if the main thread cannot run Python for
    ``freeze_exit_s``, the stacks are dumped and the process exits 1."""
    def arm() -> None:
        faulthandler.dump_traceback_later(cfg.server.freeze_exit_s, exit=True)
    return arm


def _wait_for_stop(inbox: SignalInbox, service: Service, cfg: Config,
                   reload_config: Callable[[], Config], log: Any) -> None:
    while True:
        sig = inbox.wait(tick=_freeze_watchdog(cfg), tick_s=min(WATCH_TICK_S, cfg.server.freeze_exit_s / 4))
        if sig == signal.SIGHUP:
            log.info("signal", signal="SIGHUP", action="reload")
            _reload(service, cfg, reload_config, log)
        elif sig in STOP_SIGNALS:
            log.info("signal", signal=signal.Signals(sig).name, action="stop")
            return


def _stop_service(service: Service, log: Any) -> None:
    started = time.monotonic()
    try:
        service.stop()
    except Exception:
        log.exception("service_stop_failed")
    log.info("drained", ms=round((time.monotonic() - started) * 1000))


# ---------------------------------------------------------------- background life


def stderr_path(cfg: Config) -> Path:
    """Where a daemonised process's raw stderr (tracebacks, faulthandler dumps) goes."""
    return cfg.paths.logfile.with_name("semdexd.stderr")


def start_background(cfg: Config, reload_config: Callable[[], Config], log_level: str,
                     timeout_s: float) -> tuple[int, dict[str, Any]]:
    """Daemonise a server for ``cfg``; return ``(pid, version reply)`` once it answers.

    Raises AlreadyRunning if one is up, StartFailed if the daemon died or stayed silent.
    """
    info = probe(cfg)
    if info.alive:
        raise AlreadyRunning(info.pid, cfg.paths.pidfile)
    private_dir(cfg.paths.state_dir)
    marks = {p: _size(p) for p in (cfg.paths.logfile, stderr_path(cfg))}
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(ready_r)
        _daemon_child(cfg, reload_config, log_level, ready_w)
    os.close(ready_w)
    try:
        line = _read_line(ready_r, timeout_s)
    finally:
        os.close(ready_r)
        os.waitpid(child, 0)  # the intermediate process exits as soon as the daemon detaches
    if line is None:
        raise StartFailed(f"semdexd did not become ready within {timeout_s:.0f} s; it may still be "
                          f"starting: see {cfg.paths.logfile}")
    if not line.startswith("ready "):
        raise StartFailed("semdexd exited during start-up:\n" + _new_log_lines(marks))
    return int(line.split()[1]), call_json(cfg.socket_path, "version", timeout=timeout_s)


def _daemon_child(cfg: Config, reload_config: Callable[[], Config], log_level: str, ready_w: int) -> NoReturn:
    """In the forked child: detach, log to files, serve; never returns into the CLI's code."""
    import faulthandler
    import traceback

    import daemon as python_daemon

    from semdexd.log import get_logger, setup_logging

    code = 1
    errlog = open(stderr_path(cfg), "a", buffering=1, encoding="utf-8",
                  opener=lambda path, flags: os.open(path, flags, 0o600))
    try:
        context = python_daemon.DaemonContext(
            files_preserve=[ready_w], stdout=errlog, stderr=errlog, umask=0o077, working_directory="/",
            detach_process=True, prevent_core=True,
            signal_map={signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None})
        with context:
            faulthandler.enable(errlog)
            setup_logging(cfg.paths.logfile, log_level)
            log = get_logger()

            def ready(pid: int) -> None:
                os.write(ready_w, f"ready {pid}\n".encode())
                os.close(ready_w)

            try:
                serve(cfg, reload_config, log, ready)
                code = 0
            except Exception as exc:
                log.exception("start_failed", error=str(exc))
    except BaseException:
        traceback.print_exc(file=errlog)
    finally:
        errlog.flush()
        os._exit(code)


def _read_line(fd: int, timeout_s: float) -> str | None:
    """Read one line from ``fd`` within the deadline; "" on EOF, None on timeout."""
    deadline = time.monotonic() + timeout_s
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 256)
        if not chunk:
            return buf.decode(errors="replace")
        buf += chunk
    return buf.decode(errors="replace").strip()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _new_log_lines(marks: dict[Path, int], limit: int = 20) -> str:
    """What the failed daemon wrote since ``marks``: errors from the JSON log, then raw stderr."""
    out: list[str] = []
    for path, start in marks.items():
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                lines = fh.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        out += [f"  {path.name}: {_describe(line)}" for line in lines if _is_error(line)][-limit:]
    return "\n".join(out) or "  (nothing logged; see the log files)"


def _is_error(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return bool(line.strip())  # raw stderr: every line counts
    return isinstance(record, dict) and record.get("level") in ("error", "critical", "exception")


def _describe(line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    detail = record.get("error") or ""
    return f"{record.get('event')}: {detail}".rstrip(": ")


# ---------------------------------------------------------------- inspection and stop


@dataclass(frozen=True)
class DaemonInfo:
    """What is known about the daemon for a config: pidfile pid, liveness, socket answer."""

    pid: int | None
    alive: bool
    socket: Path
    answering: bool


def _is_semdexd(pid: int) -> bool:
    """Is ``pid`` a live (non-zombie) semdexd process?"""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return any("semdexd" in part for part in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def probe(cfg: Config) -> DaemonInfo:
    """Inspect the pidfile and the socket for ``cfg`` (no side effects)."""
    pid = read_pid(cfg.paths.pidfile)
    alive = pid is not None and _is_semdexd(pid)
    try:
        call_json(cfg.socket_path, "version", timeout=5.0)
        answering = True
    except (OSError, RuntimeError, ValueError):
        answering = False
    return DaemonInfo(pid if alive else None, alive, cfg.socket_path, answering)


def stop_daemon(cfg: Config, timeout_s: float) -> int | None:
    """SIGTERM the daemon and wait until it is gone; return its pid, or None if none was running.

    Raises TimeoutError if it is still running at the deadline.
    """
    info = probe(cfg)
    if not info.alive or info.pid is None:
        return None
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _is_semdexd(info.pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"semdexd (pid {info.pid}) still running {timeout_s:.0f} s after SIGTERM; "
                               f"see {cfg.paths.logfile} (kill -9 {info.pid} forces it)")
        time.sleep(0.05)
    return info.pid
