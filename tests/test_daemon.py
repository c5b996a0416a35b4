"""The daemon's life cycle with real processes: `semdexd run|start|stop|status`, signals, pidfile.

Every daemon here runs on its own temp XDG dirs and a model name that does not exist, so the
Service fails its (background) model boot at once and never loads a model: these tests are about
the process, the socket and the signals, which must work whatever state the Service is in.
`DaemonProcess` is also used by test_server.py and test_client.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from semdexd.app.daemon import read_pid
from semdexd.api.rpc import call_json
from tests.support import Instance, wait_for

BIN = Path(sys.executable).parent
MODULES = {"semdexd": "semdexd.app.cli", "semdex": "semdex_client.cli"}


def command(tool: str) -> list[str]:
    """The installed console script, or ``python -m`` its module if scripts are not installed."""
    exe = BIN / tool
    return [str(exe)] if exe.exists() else [sys.executable, "-m", MODULES[tool]]


class DaemonProcess:
    """One isolated daemon instance driven through the real command-line tools."""

    def __init__(self, tmp_path: Path, **sections: dict[str, Any]) -> None:
        sections.setdefault("model", {"name": str(tmp_path / "no-such-model")})
        self.inst = Instance(tmp_path, [], **sections)
        self.cfg = self.inst.config()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "SEMDEX"))}
        self.env.update(self.inst.env, PYTHONUNBUFFERED="1")
        self.stderr_path = tmp_path / "semdexd-run.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.cfg.socket_path

    def run(self, *args: str, prefix: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``semdexd run --config FILE ARGS`` in the foreground (stderr to a file), after
        the command ``prefix`` when given (a wrapper that then execs it)."""
        argv = [*(prefix or []), *command("semdexd"), "run", "--config", str(self.inst.config_file), *args]
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=err)
        return self.proc

    def answers(self) -> bool:
        try:
            call_json(self.socket, "version", timeout=10.0)
        except (OSError, RuntimeError, ValueError):
            return False
        return True

    def wait_ready(self, timeout: float = 120.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"semdexd exited with {self.proc.returncode}:\n{self.stderr_text()}")
            return self.answers()
        wait_for(ready, timeout, "the daemon's socket to answer")

    def tool(self, name: str, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run ``semdexd``/``semdex`` with this instance's environment."""
        return subprocess.run([*command(name), *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def semdexd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.tool("semdexd", *args, "--config", str(self.inst.config_file)) if args and args[0] in (
            "start", "stop", "status") else self.tool("semdexd", *args)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 120.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def events(self, source: Path | None = None) -> list[dict[str, Any]]:
        """JSON log records from the foreground stderr (or ``source``)."""
        path = source or self.stderr_path
        out = []
        for line in (path.read_text(errors="replace").splitlines() if path.exists() else []):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def has_event(self, event: str, source: Path | None = None) -> bool:
        return any(r.get("event") == event for r in self.events(source))

    def cleanup(self) -> None:
        """Stop whatever this instance started: the foreground process and any background daemon."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pid = read_pid(self.cfg.paths.pidfile)
        if pid is not None:
            self.semdexd("stop", "--timeout", "30")
        self.inst.cleanup()


@pytest.fixture
def daemon(tmp_path: Path):
    d = DaemonProcess(tmp_path)
    yield d
    d.cleanup()


# ---------------------------------------------------------------- semdexd run


def test_run_serves_on_a_private_socket_and_sigterm_cleans_up(daemon: DaemonProcess) -> None:
    daemon.run()
    daemon.wait_ready()
    sock_stat, dir_stat = daemon.socket.stat(), daemon.socket.parent.stat()
    assert oct(sock_stat.st_mode & 0o777) == oct(0o600)
    assert oct(dir_stat.st_mode & 0o777) == oct(0o700)
    assert read_pid(daemon.cfg.paths.pidfile) == daemon.proc.pid
    version = call_json(daemon.socket, "v1.version")
    assert version["protocol"] == 1 and version["version"]

    idle = socket.socket(socket.AF_UNIX)  # a connected client must not hold up the shutdown
    idle.connect(str(daemon.socket))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    idle.settimeout(30)
    try:
        closed = idle.recv(10) == b""
    except ConnectionResetError:  # still in the listen backlog when the daemon closed it: a reset
        closed = True
    assert closed
    idle.close()
    assert not daemon.socket.exists()
    assert not daemon.cfg.paths.pidfile.exists()
    assert daemon.has_event("stopped") and daemon.has_event("drained")


def test_sigint_stops_cleanly_too(daemon: DaemonProcess) -> None:
    daemon.run()
    daemon.wait_ready()
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit() == 0
    assert not daemon.socket.exists() and not daemon.cfg.paths.pidfile.exists()


def test_second_run_on_the_same_config_is_refused(daemon: DaemonProcess) -> None:
    daemon.run()
    daemon.wait_ready()
    second = daemon.tool("semdexd", "run", "--config", str(daemon.inst.config_file), timeout=120)
    assert second.returncode == 1
    assert "already running" in second.stderr and str(daemon.proc.pid) in second.stderr
    assert daemon.answers(), "the first daemon keeps serving"
    assert read_pid(daemon.cfg.paths.pidfile) == daemon.proc.pid


def test_restart_after_kill_9_replaces_the_stale_socket(daemon: DaemonProcess) -> None:
    daemon.run()
    daemon.wait_ready()
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    assert daemon.socket.exists(), "kill -9 leaves the socket file behind"
    daemon.run()
    daemon.wait_ready()
    assert read_pid(daemon.cfg.paths.pidfile) == daemon.proc.pid


def test_sighup_reloads_and_a_bad_config_is_ignored(daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon.run()
    daemon.wait_ready()
    good = daemon.inst.config_file.read_text()
    daemon.inst.config_file.write_text(good + "\n[bogus]\nkey = 1\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: any(r.get("event") == "reload_failed" and "bogus" in str(r.get("error"))
                         for r in daemon.events()), 60, "the bad reload to be logged")
    assert daemon.answers()
    from semdexd.api.rpc import call_json
    assert "bogus" in call_json(daemon.socket, "status")["reload_error"], "status shows why the reload was refused"

    folder = tmp_path / "added"
    folder.mkdir()
    daemon.inst.config_file.write_text(good.replace("folders = []", f'folders = ["{folder}"]'))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: sum(r.get("signal") == "SIGHUP" for r in daemon.events()) == 2, 60, "the second SIGHUP")
    wait_for(lambda: daemon.has_event("config_reloaded") or len([r for r in daemon.events()
                                                                   if r.get("event") == "reload_failed"]) == 2,
             60, "the reload outcome")
    assert daemon.answers()
    if daemon.has_event("config_reloaded"):
        assert call_json(daemon.socket, "status")["reload_error"] is None, "cleared by a good reload"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0


def test_bad_config_exits_78_and_a_bad_folder_is_a_usage_error(daemon: DaemonProcess) -> None:
    daemon.inst.config_file.write_text("[index]\nfolders = 3\n")
    for sub in ("run", "start"):
        result = daemon.tool("semdexd", sub, "--config", str(daemon.inst.config_file))
        assert result.returncode == 78, result.stderr  # EX_CONFIG: the service units do not restart it
        assert "config error" in result.stderr and "folders" in result.stderr
    missing = daemon.tool("semdexd", "run", str(daemon.inst.tmp / "not-a-folder"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr


# ---------------------------------------------------------------- start / status / stop


def test_start_status_stop(daemon: DaemonProcess) -> None:
    started = daemon.semdexd("start")
    assert started.returncode == 0, started.stderr
    pid = read_pid(daemon.cfg.paths.pidfile)
    assert pid and f"pid {pid}" in started.stdout
    assert daemon.answers(), "start returns only once the socket answers"

    again = daemon.semdexd("start")
    assert again.returncode == 1 and "already running" in again.stderr

    status = daemon.semdexd("status")
    assert status.returncode == 0 and f"pid {pid}" in status.stdout and "state:" in status.stdout
    as_json = json.loads(daemon.semdexd("status", "--json").stdout)
    assert as_json["running"] and as_json["pid"] == pid and "state" in as_json["status"]

    stopped = daemon.semdexd("stop")
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
    assert not daemon.socket.exists() and not daemon.cfg.paths.pidfile.exists()
    assert any(r.get("event") == "stopped" for r in daemon.events(daemon.cfg.paths.logfile)), \
        "the daemonised process logs JSON lines to the log file"

    not_running = daemon.semdexd("status")
    assert not_running.returncode == 3 and "semdexd start" in not_running.stdout
    assert daemon.semdexd("stop").returncode == 0


def test_start_reports_why_the_daemon_died(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-socket"
    blocker.write_text("a regular file where the socket should go")
    d = DaemonProcess(tmp_path, server={"socket": str(blocker)})
    try:
        result = d.semdexd("start", "--timeout", "120")
        assert result.returncode == 1
        assert "exited during start-up" in result.stderr and "not a socket" in result.stderr
        assert blocker.read_text().startswith("a regular file"), "never delete a file that is not ours"
        assert not d.cfg.paths.pidfile.exists()
    finally:
        d.cleanup()


def test_stop_says_so_when_the_daemon_does_not_stop(daemon: DaemonProcess) -> None:
    daemon.run()
    daemon.wait_ready()
    daemon.signal(signal.SIGSTOP)  # a stuck daemon: SIGTERM stays pending
    try:
        result = daemon.semdexd("stop", "--timeout", "1")
        assert result.returncode == 1 and "still running" in result.stderr
    finally:
        daemon.signal(signal.SIGCONT)
    assert daemon.wait_exit() == 0, "the pending SIGTERM is handled once it runs again"


# ---------------------------------------------------------------- start-up cost


def _imported(args: list[str], env: dict[str, str]) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True)
    return {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}


HEAVY = {"numpy", "chromadb", "ctranslate2", "transformers", "tokenizers", "torch", "structlog", "psutil", "zmq"}


def test_help_and_client_import_nothing_heavy(daemon: DaemonProcess) -> None:
    assert not HEAVY & _imported(["-m", "semdexd.app.cli", "--help"], daemon.env)
    assert not HEAVY & _imported(["-m", "semdex_client.cli", "version"], daemon.env)
    daemon.run()
    daemon.wait_ready()
    assert not HEAVY & _imported(["-m", "semdex_client.cli", "status"], daemon.env)
