"""The product as a user meets it: `semdexd run` on a folder, driven by the real `semdex` CLI."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading

import pytest

from tests.support import Instance, wait_for

CORPUS = {
    "recipes/bread.md": "# Sourdough bread\n\nFeed the starter the night before, then mix flour, water "
                        "and salt. Let the dough rise slowly in a cool kitchen and bake in a hot oven.\n",
    "recipes/soup.md": "# Tomato soup\n\nRoast tomatoes with garlic, blend them with stock and season with basil.\n",
    "code/netutil.py": "import socket\n\n\ndef retry_on_reset(call, attempts=3):\n"
                       "    \"\"\"Retry when the peer resets the connection.\"\"\"\n"
                       "    for _ in range(attempts):\n        try:\n            return call()\n"
                       "        except ConnectionResetError:\n            continue\n",
    "travel/japan.txt": "Kyoto in autumn: temples, maple leaves and the bamboo forest in Arashiyama.\n",
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, model_info):
    tmp = tmp_path_factory.mktemp("e2e")
    folder = tmp / "notes"
    for rel, text in CORPUS.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    inst = Instance(tmp, [folder])
    env = {**os.environ, **inst.env}
    proc = subprocess.Popen([sys.executable, "-m", "semdexd.app.cli", "run", "--config", str(inst.config_file)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    yield proc, env, folder, inst
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    inst.cleanup()


def semdex(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "semdex_client.cli", *args], env=env, capture_output=True,
                         text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def status(env: dict[str, str]) -> dict:
    out = semdex(env, "status", "--json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def test_status_reports_progress_then_idle(daemon):
    proc, env, folder, inst = daemon
    seen = set()

    def idle():
        st = status(env)
        seen.add(st.get("state"))
        return st.get("state") == "idle" and st.get("files_indexed") == len(CORPUS)

    wait_for(idle, timeout=180, what="initial index via semdex status")
    st = status(env)
    assert {"state", "files_indexed", "files_failed", "files_queued", "chunks"} <= set(st)
    assert st["files_queued"] == 0 and st["chunks"] >= len(CORPUS)
    assert seen & {"starting", "indexing", "idle"}
    assert semdex(env, "status", "--wait", "--wait-timeout", "60").returncode == 0


def test_search_returns_the_expected_file(daemon):
    proc, env, folder, inst = daemon
    wait_for(lambda: status(env).get("state") == "idle", timeout=180, what="idle")
    hits = json.loads(semdex(env, "search", "how do I bake bread", "--json", "-n", "3").stdout)
    assert hits[0]["path"] == str(folder / "recipes" / "bread.md")
    assert {"path", "start_line", "end_line", "score", "snippet"} <= set(hits[0])
    hits = json.loads(semdex(env, "search", "retry_on_reset", "--json").stdout)
    assert hits[0]["path"] == str(folder / "code" / "netutil.py")
    vim = semdex(env, "search", "autumn temples", "--vimgrep", "-n", "1").stdout.strip()
    assert vim.startswith(str(folder / "travel" / "japan.txt") + ":1:1:")
    hits = json.loads(semdex(env, "search", "soup", "--path", str(folder / "code"), "--json", check=False).stdout or "[]")
    assert all(h["path"].startswith(str(folder / "code")) for h in hits)


def test_live_edit_is_searchable(daemon):
    proc, env, folder, inst = daemon
    (folder / "travel" / "iceland.md").write_text("Glaciers, geysers and black sand beaches near Vik.\n")

    def found():
        out = semdex(env, "search", "geysers and glaciers", "--json", "-n", "1", check=False)
        return out.returncode == 0 and json.loads(out.stdout)[0]["path"].endswith("iceland.md")

    wait_for(found, timeout=60, what="new file searchable")


def test_embed_prints_vectors(daemon):
    proc, env, folder, inst = daemon
    vectors = json.loads(semdex(env, "embed", "hello world", "second text", "--json").stdout)
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3


def test_socket_is_private(daemon):
    proc, env, folder, inst = daemon
    sock = inst.config().socket_path
    wait_for(sock.exists, timeout=60, what="socket")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


def test_bad_requests_do_not_disturb_a_concurrent_search(daemon):
    import socket as so
    proc, env, folder, inst = daemon
    path = str(inst.config().socket_path)
    wait_for(lambda: status(env).get("state") == "idle", timeout=180, what="idle")
    results: list[int] = []
    t = threading.Thread(target=lambda: results.append(semdex(env, "search", "bread", "--json").returncode))
    t.start()
    replies = []
    for payload in (b"\xc1\xc1garbage\n", b'{"id": 1, "method": "search", "params": {"query": 5}}\n',
                    b'{"id": 2, "method": "nope"}\n', b"\x94\x00\x01\xa6sea"):
        with so.socket(so.AF_UNIX, so.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(path)
            s.sendall(payload)
            s.shutdown(so.SHUT_WR)
            replies.append(s.recv(65536))
    t.join(120)
    assert results == [0]
    assert b"invalid_params" in replies[1] and b"unknown_method" in replies[2]
    assert all(replies), replies
    assert proc.poll() is None


def test_similar_finds_related_files_not_itself(daemon):
    proc, env, folder, inst = daemon
    wait_for(lambda: status(env).get("state") == "idle", timeout=180, what="idle")
    bread = str(folder / "recipes" / "bread.md")
    hits = json.loads(semdex(env, "similar", bread, "--json", "-n", "3").stdout)
    assert hits and all(h["path"] != bread for h in hits)
    assert hits[0]["path"] == str(folder / "recipes" / "soup.md")
    hits = json.loads(semdex(env, "similar", f"{bread}:3", "--json", "-n", "2").stdout)
    assert hits and hits[0]["path"] != bread
