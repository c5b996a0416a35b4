"""The `semdex` CLI and the `Client` library, as real processes on real sockets.

Output formats and exit codes are checked against an in-process `Server` whose handler map
stands in for the Service (hits, status progressions and errors on demand: the indexing
engine is tested elsewhere); the last group runs the CLI against a real `semdexd run`.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import structlog

from semdex_client.api import Client, DaemonNotRunning, RemoteError, TransportError
from semdex_client.cli import parse_location
from semdex_client.render import vimgrep
from semdex_client.status_view import RateTracker, fmt_duration, progress_bar
from semdexd.api.types import ApiError
from semdexd.server import Server
from tests.support import WITH_CTRL_C, wait_for
from tests.test_daemon import DaemonProcess, command


def hit(path: str, start: int, score: float, snippet: str) -> dict[str, Any]:
    return {"path": path, "start_line": start, "end_line": start + 4, "score": score, "snippet": snippet}


class FakeService:
    """Handlers shaped like the Service's, recording every call."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()
        self.statuses = [
            {"state": "starting", "files_total": 0},
            {"state": "indexing", "files_indexed": 3, "files_queued": 7, "files_total": 10, "chunks": 30},
            {"state": "indexing", "files_indexed": 6, "files_failed": 1, "files_queued": 3, "files_total": 10,
             "chunks": 60, "eta_s": 12.0, "failures": [{"path": "/d/bad.bin", "status": "skipped", "reason": "binary file"}]},
            {"state": "idle", "files_indexed": 9, "files_failed": 1, "files_queued": 0, "files_total": 10, "chunks": 90},
        ]

    def record(self, method: str, params: dict[str, Any]) -> None:
        self.calls.append((method, params))

    def params_of(self, method: str) -> dict[str, Any]:
        """The last params of ``method``, without ``cwd`` (checked on its own: `cwd_of`)."""
        return {k: v for k, v in self.cwd_of(method)[1].items() if k != "cwd"}

    def cwd_of(self, method: str) -> tuple[str | None, dict[str, Any]]:
        params = [p for m, p in self.calls if m == method][-1]
        return params.get("cwd"), params

    def handlers(self) -> dict[str, Any]:
        def search(p: dict[str, Any]) -> dict[str, Any]:
            self.record("search", p)
            if p["query"] == "nothing":
                return {"hits": [], "weak": [], "min_score": 0.35,
                        **({"notice": f"no indexed files under {p['path']}"} if p.get("path") else {})}
            if p["query"] == "weak":
                return {"hits": [], "min_score": 0.35, "weak": [hit("/w/x.md", 1, 0.2, "something else")],
                        "indexing": {"done": 120, "total": 5000}}
            if p["query"] == "refuse":
                raise ApiError("unavailable", "the index is still starting")
            if p["query"] == "slow":
                self.release.wait(60)
            return {"hits": [hit(str(self.root / "src" / "a.py"), 10, 0.91, "def retry(n):\n    backoff = 2 ** n\n"),
                             hit("/elsewhere/b.md", 1, 0.5, "\n  # Retry policy\n\nwhen it fails")]}

        def similar(p: dict[str, Any]) -> dict[str, Any]:
            self.record("similar", p)
            return {"hits": [hit("/x/y.py", 3, 0.8, "similar code")]}

        def status(p: dict[str, Any]) -> dict[str, Any]:
            self.record("status", p)
            index = min(sum(m == "status" for m, _ in self.calls) - 1, len(self.statuses) - 1)
            base = {"version": "0.1.0", "folders": ["/d"], "files_indexed": 0, "files_failed": 0,
                    "files_skipped": 0, "files_queued": 0, "files_total": 0, "chunks": 0, "failures": []}
            return {**base, **self.statuses[index]}

        def simple(name: str, result: dict[str, Any]) -> Any:
            return lambda p: (self.record(name, p), result)[1]

        return {"search": search, "similar": similar, "status": status,
                "reindex": simple("reindex", {"queued": 3}), "pause": simple("pause", {"state": "paused"}),
                "resume": simple("resume", {"state": "idle"}),
                "embed": lambda p: (self.record("embed", p), {"vectors": [[0.6, 0.8]] * len(p["texts"])})[1],
                "version": simple("version", {"version": "0.1.0", "protocol": 1, "model": "fake"})}


class Fake:
    def __init__(self) -> None:
        self.runtime = Path(tempfile.mkdtemp(dir="/tmp", prefix="sx"))
        self.socket = self.runtime / "semdex" / "fake.sock"
        self.service = FakeService(self.runtime)
        self.server = Server(self.socket, self.service.handlers(), max_request_bytes=1 << 20,
                             log=structlog.get_logger("test"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "SEMDEX"))}
        self.env.update(HOME=str(self.runtime / "home"), NO_COLOR="1")

    def semdex(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               socket: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*command("semdex"), *args] + (["--socket", str(self.socket)] if socket else [])
        return subprocess.run(argv, env=env or self.env, cwd=cwd or self.runtime, capture_output=True,
                              text=True, timeout=120)


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    f.server.start()
    yield f
    f.service.release.set()
    f.server.close()
    shutil.rmtree(f.runtime, ignore_errors=True)


# ---------------------------------------------------------------- search and similar


def test_search_human_output_and_params(fake: Fake) -> None:
    (fake.runtime / "sub").mkdir()
    result = fake.semdex("search", "retry", "policy", "-n", "5", "--path", "sub", "--glob", "*.py",
                         "--type", "py", "--type", ".md", "--mode", "lexical")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["src/a.py:10-14  0.91", "10:def retry(n):", "11-    backoff = 2 ** n", "12-"], \
        "relative under the cwd; the snippet's real lines, numbered, ':' where a query word is"
    assert lines[4] == "--" and lines[5] == "/elsewhere/b.md:1-5  0.50" and "2:  # Retry policy" in lines
    assert fake.service.params_of("search") == {"query": "retry policy", "limit": 5, "path": "sub",
                                                "glob": "*.py", "type": ["py", "md"], "mode": "lexical"}
    assert fake.service.cwd_of("search")[0] == str(fake.runtime), "the client sends its working directory"


def test_search_repeatable_filters_min_score_and_machine_formats(fake: Fake) -> None:
    result = fake.semdex("search", "retry", "--path", "a", "--path", "/b", "--glob", "src/**/*.py", "--glob", "*.md",
                         "--exclude", "tests/**", "--min-score", "0.5", "--jsonl")
    assert result.returncode == 0, result.stderr
    params = fake.service.params_of("search")
    assert params["path"] == ["a", "/b"] and params["glob"] == ["src/**/*.py", "*.md"]
    assert params["exclude"] == "tests/**" and params["min_score"] == 0.5
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(fake.runtime / "src" / "a.py"), "/elsewhere/b.md"]
    files = fake.semdex("search", "retry", "-l")
    assert files.stdout.splitlines() == [str(fake.runtime / "src" / "a.py"), "/elsewhere/b.md"]
    assert fake.semdex("search", "retry", "--min-score", "2").returncode == 2


def test_search_context_lines_come_from_the_file(fake: Fake) -> None:
    src = fake.runtime / "src"
    src.mkdir()
    (src / "a.py").write_text("\n".join(f"line {n}" for n in range(1, 10)) + "\ndef retry(n):\n    backoff = 2 ** n\n\nz\n")
    lines = fake.semdex("search", "retry", "-C", "2").stdout.splitlines()
    assert lines[:6] == ["src/a.py:10-14  0.91", "8-line 8", "9-line 9", "10:def retry(n):", "11-    backoff = 2 ** n", "12-"]
    assert lines[6] == "13-z"
    after = fake.semdex("search", "retry", "-A", "1", "-B", "0").stdout.splitlines()
    assert after[1:5] == ["10:def retry(n):", "11-    backoff = 2 ** n", "12-", "13-z"]


def test_search_weak_hits_indexing_progress_and_notices(fake: Fake) -> None:
    weak = fake.semdex("search", "weak")
    assert weak.returncode == 1
    assert "no good match" in weak.stderr and "0.35" in weak.stderr
    assert "indexing 120/5,000 files; results so far:" in weak.stderr
    assert weak.stdout.splitlines()[0] == "/w/x.md:1-5  0.20 weak"
    nope = fake.semdex("search", "nothing", "--path", "/nope")
    assert nope.returncode == 1 and "no indexed files under /nope" in nope.stderr


def test_highlight_respects_color_choice() -> None:
    from semdex_client.render import human, use_color

    hit_ = {**hit("/p/a.py", 1, 0.9, "def parse_config(path):"), "snippet_line": 1}
    coloured = "\n".join(human([hit_], color=True, cwd=Path("/"), query="parse config"))
    assert "\x1b[1m\x1b[31mparse\x1b[0m_\x1b[1m\x1b[31mconfig\x1b[0m" in coloured
    assert "\x1b" not in "\n".join(human([hit_], color=False, cwd=Path("/"), query="parse config"))

    class Tty:
        def isatty(self) -> bool:
            return True

    assert use_color("auto", Tty(), {}) and not use_color("auto", Tty(), {"NO_COLOR": "1"})
    assert not use_color("auto", object(), {}) and use_color("always", object(), {"NO_COLOR": "1"})


def test_search_json_is_the_hits_array(fake: Fake) -> None:
    result = fake.semdex("search", "retry", "--json")
    assert result.returncode == 0
    hits = json.loads(result.stdout)
    assert [h["path"] for h in hits] == [str(fake.runtime / "src" / "a.py"), "/elsewhere/b.md"]
    assert {"path", "start_line", "end_line", "score", "snippet"} <= set(hits[0])
    assert fake.service.params_of("search") == {"query": "retry", "limit": 10}
    assert fake.service.cwd_of("search")[0] == str(fake.runtime)


def test_search_vimgrep_lines(fake: Fake) -> None:
    result = fake.semdex("search", "retry", "--vimgrep")
    assert result.stdout.splitlines() == [f"{fake.runtime}/src/a.py:10:1:def retry(n):", "/elsewhere/b.md:1:3:# Retry policy"]
    assert vimgrep([{**hit("/p", 10, 1.0, "\n\n    x = 1"), "snippet_line": 20}]) == ["/p:22:5:x = 1"]


def test_no_results_exit_1(fake: Fake) -> None:
    human = fake.semdex("search", "nothing")
    assert human.returncode == 1 and human.stdout == "" and "no results" in human.stderr
    as_json = fake.semdex("search", "nothing", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == []


def test_daemon_errors_exit_4_and_usage_errors_exit_2(fake: Fake, tmp_path: Path) -> None:
    refused = fake.semdex("search", "refuse")
    assert refused.returncode == 4 and "unavailable: the index is still starting" in refused.stderr
    assert fake.semdex("search", "x", "-n", "0").returncode == 2
    assert fake.semdex("search").returncode == 2
    assert fake.semdex("bogus-command").returncode == 2
    missing = fake.semdex("status", "--config", str(tmp_path / "missing.toml"), socket=False)
    assert missing.returncode == 2 and "config file not found" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nsocket = 5\n")  # unusable: the default socket applies (issue 11.6)
    fallback = fake.semdex("status", "--config", str(bad), socket=False)
    assert fallback.returncode == 3 and "semdexd.sock" in fallback.stderr


def test_timeout_is_a_transport_failure_exit_5(fake: Fake) -> None:
    result = fake.semdex("--timeout", "0.5", "search", "slow")
    assert result.returncode == 5 and "no reply" in result.stderr


def test_similar_file_and_line(fake: Fake) -> None:
    (fake.runtime / "f.py").write_text("x = 1\n")
    assert fake.semdex("similar", "f.py:12", "-n", "3").returncode == 0
    assert fake.service.params_of("similar") == {"path": str(fake.runtime / "f.py"), "limit": 3, "line": 12}
    assert fake.semdex("similar", "f.py", "--json").returncode == 0
    assert fake.service.params_of("similar") == {"path": str(fake.runtime / "f.py"), "limit": 10}
    missing = fake.semdex("similar", "missing.py:3")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_parse_location(tmp_path: Path) -> None:
    odd = tmp_path / "a:1"  # a file whose name ends like a line number wins over the split
    odd.write_text("")
    assert parse_location(str(odd)) == (odd, None)
    assert parse_location(f"{odd}:7") == (odd, 7)


# ---------------------------------------------------------------- other commands


def test_reindex_pause_resume_embed_version(fake: Fake) -> None:
    reindex = fake.semdex("reindex", "src")
    assert reindex.returncode == 0 and reindex.stdout.strip() == "reindex: 3 file(s) queued"
    assert fake.service.params_of("reindex") == {"path": str(fake.runtime / "src")}
    assert fake.semdex("reindex").returncode == 0 and fake.service.params_of("reindex") == {}
    assert fake.semdex("pause").stdout.strip() == "semdexd: paused"
    assert fake.semdex("resume").stdout.strip() == "semdexd: idle"
    embed = fake.semdex("embed", "one", "two", "--json")
    assert embed.returncode == 0 and json.loads(embed.stdout) == [[0.6, 0.8], [0.6, 0.8]]
    assert fake.service.params_of("embed") == {"texts": ["one", "two"], "kind": "passage"}
    fake.semdex("embed", "q", "--query")
    assert fake.service.params_of("embed")["kind"] == "query"
    version = fake.semdex("version", "--json")
    assert json.loads(version.stdout)["daemon"]["model"] == "fake"


def test_socket_from_environment(fake: Fake) -> None:
    result = fake.semdex("version", env={**fake.env, "SEMDEX_SOCKET": str(fake.socket)}, socket=False)
    assert result.returncode == 0 and "semdexd 0.1.0" in result.stdout


# ---------------------------------------------------------------- status


def test_status_human_shows_progress_eta_and_reasons(fake: Fake) -> None:
    fake.service.statuses = [fake.service.statuses[2]]
    result = fake.semdex("status")
    assert result.returncode == 0
    out = result.stdout
    assert "indexing" in out and "6 indexed" in out and "1 failed" in out and "3 queued" in out
    assert "█" in out and "70%" in out and "7/10 files" in out and "ETA 12s" in out
    assert "/d/bad.bin: binary file" in out


def test_status_json_is_one_object(fake: Fake) -> None:
    fake.service.statuses = [fake.service.statuses[1]]
    result = fake.semdex("status", "--json")
    status = json.loads(result.stdout)
    assert {"state", "files_indexed", "files_failed", "files_queued", "chunks"} <= set(status)


def test_status_wait_refreshes_until_idle(fake: Fake) -> None:
    result = fake.semdex("status", "--wait", "--interval", "0.01")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("idle: 10/10 files")
    assert sum(m == "status" for m, _ in fake.service.calls) == 4
    as_json = fake.semdex("status", "--wait", "--json", "--interval", "0.01")
    assert json.loads(as_json.stdout)["state"] == "idle"


def test_status_wait_gives_up_at_its_timeout(fake: Fake) -> None:
    fake.service.statuses = [fake.service.statuses[1]]
    result = fake.semdex("status", "--wait", "--interval", "0.01", "--wait-timeout", "0.2")
    assert result.returncode == 1 and "still indexing" in result.stderr


def test_status_watch_until_ctrl_c(fake: Fake) -> None:
    argv = [*WITH_CTRL_C, *command("semdex"), "status", "--watch", "--json", "--interval", "0.01",
            "--socket", str(fake.socket)]
    proc = subprocess.Popen(argv, env=fake.env, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: sum(m == "status" for m, _ in fake.service.calls) >= 5, 60, "several refreshes")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    states = [json.loads(line)["state"] for line in out.splitlines()]
    assert states[:4] == ["starting", "indexing", "indexing", "idle"] and len(states) >= 5


def test_terminal_output_has_colour_and_redraws_in_place(fake: Fake) -> None:
    env = {k: v for k, v in fake.env.items() if k != "NO_COLOR"} | {"TERM": "xterm"}
    search = run_in_pty([*command("semdex"), "search", "retry", "--socket", str(fake.socket)], env, fake.runtime)
    assert "\x1b[35m" in search and "src/a.py:10-14" in search and "\x1b[1m\x1b[31mretry" in search
    status = run_in_pty([*command("semdex"), "status", "--wait", "--interval", "0.01", "--socket", str(fake.socket)],
                        env, fake.runtime)
    assert "\x1b[" in status and "F\x1b[J" in status, "the block is redrawn in place"
    assert status.count("semdexd 0.1.0") == 4


def run_in_pty(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run ``argv`` with a pseudo-terminal as stdout; return everything it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode(errors="replace")


def test_status_helpers() -> None:
    assert fmt_duration(None) == "?" and fmt_duration(75) == "1m15s" and fmt_duration(7322) == "2h02m"
    assert progress_bar(5, 10, 10) == "[█████░░░░░]  50%"
    clock = iter([0.0, 10.0]).__next__
    tracker = RateTracker(clock=clock)
    assert tracker.eta(10, 100) is None
    assert tracker.eta(30, 100) == pytest.approx(35.0)  # 2 files/s, 70 to go


# ---------------------------------------------------------------- the Client library


@pytest.mark.parametrize("framing", ["msgpack", "json"])
def test_client_library_both_framings_one_connection(fake: Fake, framing: str) -> None:
    with Client(fake.socket, framing=framing) as client:
        for _ in range(3):
            assert client.call("version")["protocol"] == 1
        assert fake.server.active_connections == 1
        assert client.call("search", query="retry", limit=2)["hits"][0]["start_line"] == 10
        with pytest.raises(RemoteError) as err:
            client.call("search", query="refuse")
        assert err.value.code == "unavailable"
        with pytest.raises(RemoteError) as err:
            client.call("nope")
        assert err.value.code == "unknown_method"
        assert client.call("v1.version")["model"] == "fake", "the connection survives errors"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to chown")
def test_client_refuses_a_socket_owned_by_another_user(fake: Fake) -> None:
    os.chown(fake.socket, 65534, 65534)
    with pytest.raises(TransportError, match="belongs to uid 65534"):
        Client(fake.socket).call("version")
    result = fake.semdex("version")
    assert result.returncode == 5 and "refusing" in result.stderr


def test_client_library_not_running_and_dropped(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="semdexd start"):
        Client(tmp_path / "none.sock").call("version")
    runtime = Path(tempfile.mkdtemp(dir="/tmp", prefix="sx"))
    server = Server(runtime / "s" / "x.sock", {"version": lambda p: {}}, max_request_bytes=1 << 20,
                    log=structlog.get_logger("test"), max_connections=1)
    server.start()
    try:
        with Client(server.path) as first:
            first.call("version")
            Client(server.path).call("version")  # the only slot: the idle first connection makes room
            with pytest.raises(TransportError, match="closed the connection"):
                first.call("version")
    finally:
        server.close()
        shutil.rmtree(runtime, ignore_errors=True)


# ---------------------------------------------------------------- against the real daemon


def test_cli_when_the_daemon_is_not_running(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path)
    try:
        for args in (["status"], ["search", "x"], ["status", "--wait"], ["pause"]):
            result = d.tool("semdex", *args)
            assert result.returncode == 3, (args, result.stderr)
            assert "not running" in result.stderr and "semdexd start" in result.stderr
        version = d.tool("semdex", "version")
        assert version.returncode == 3 and "daemon not running" in version.stdout
    finally:
        d.cleanup()


def test_cli_against_the_real_daemon(live: DaemonProcess) -> None:
    version = live.tool("semdex", "version")
    assert version.returncode == 0 and "protocol 1" in version.stdout
    status = live.tool("semdex", "status", "--json")
    obj = json.loads(status.stdout)
    assert {"state", "files_indexed", "files_failed", "files_queued", "chunks"} <= set(obj)
    assert status.returncode == (4 if obj["state"] == "error" else 0)
    # its model does not exist: the Service ends in state "error", which --wait reports
    waited = live.tool("semdex", "status", "--wait", "--wait-timeout", "120")
    assert waited.returncode == 4 and "reports an error" in waited.stderr and "no-such-model" in waited.stderr
    wrong = live.tool("semdex", "--timeout", "60", "embed", "x")  # the model never loads here
    assert wrong.returncode == 4 and "semdexd refused the request" in wrong.stderr


# ---------------------------------------------------------------- the socket path, leniently


@pytest.mark.parametrize("text", [
    '[server]\nsocket = "{sock}"\n[index]\nfolderz = ["~/x"]\n',           # unknown key elsewhere
    '[server]\nsocket = "{sock}"  # mine\n[pool]\nworkers = "two"\n',      # wrong type elsewhere
    '[index]\nfolders = [~/notes\n[server]\nsocket = "{sock}"\n',           # not valid TOML
])
def test_a_config_typo_does_not_lock_the_cli_out(fake: Fake, tmp_path: Path, text: str) -> None:
    from semdex_client.paths import resolve_socket_path

    config = tmp_path / "config.toml"
    config.write_text(text.replace("{sock}", str(fake.socket)))
    assert resolve_socket_path(None, str(config), env={}) == fake.socket
    result = fake.semdex("version", "--config", str(config), socket=False)
    assert result.returncode == 0, result.stderr


def test_an_unreadable_socket_key_falls_back_to_the_default(tmp_path: Path) -> None:
    from semdex_client.paths import resolve_socket_path

    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    default = tmp_path / "run" / "semdex" / "semdexd.sock"
    assert resolve_socket_path(env=env) == default  # no config file at all
    (tmp_path / "cfg" / "semdex").mkdir(parents=True)
    for text in ("[server]\nsocket = 5\n", "\xff garbage", "[server\nsocket = \"/x\"", "[server]\nsocket = \"\"\n"):
        (tmp_path / "cfg" / "semdex" / "config.toml").write_text(text, errors="surrogateescape")
        assert resolve_socket_path(env=env) == default, text
