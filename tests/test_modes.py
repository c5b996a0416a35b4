"""The daemon's files are the user's alone: every folder it creates 0700, every file 0600, whatever
the umask it was started with; an existing data/state dir with wider modes is tightened at start.

The first test runs a real `semdexd run` under umask 022 that indexes a tiny folder with the real
model (manifest, Chroma, embedding cache, their WAL/SHM files), then walks every directory it wrote.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from semdexd.system.private import PrivateDirError, private_file, secure_tree
from semdexd.api.rpc import call_json
from tests.support import Instance, wait_for
from tests.test_daemon import DaemonProcess, command


def modes(root: Path) -> dict[str, int]:
    """Relative path -> permission bits of ``root`` and everything below it (symlinks skipped)."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            if not stat.S_ISLNK(st.st_mode):
                out[str(path.relative_to(root))] = stat.S_IMODE(st.st_mode)
    return out


def not_private(found: dict[str, int], root: Path) -> list[str]:
    return [f"{rel}: {mode:o}" for rel, mode in found.items()
            if mode != (0o700 if (root / rel).is_dir() else 0o600)]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_daemon_started_under_umask_022_writes_only_private_files(tmp_path: Path, model_info: object) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "secret.md").write_text("# Launch codes\n\nThe vault opens with 0000, tell nobody.\n")
    (folder / "soup.txt").write_text("Roast tomatoes with garlic and blend them with stock.\n")
    inst = Instance(tmp_path / "inst", [folder])
    cfg = inst.config()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "SEMDEX"))}
    env.update(inst.env)
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen([*command("semdexd"), "run", "--config", str(inst.config_file)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err, umask=0o022)
    try:
        def indexed() -> bool:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            try:
                st = call_json(cfg.socket_path, "status", timeout=10)
            except (OSError, RuntimeError, ValueError):
                return False
            return st.get("state") == "idle" and st.get("files_indexed") == 2
        wait_for(indexed, 180, "the two files indexed")
        data = modes(cfg.paths.data_dir)
        written = set(data)
        assert any(p.endswith("manifest.sqlite3") for p in written), sorted(written)
        assert any(p.endswith("manifest.sqlite3-wal") for p in written), sorted(written)
        assert "chroma/chroma.sqlite3" in written and "embed-cache.sqlite3" in written, sorted(written)
        bad = not_private(data, cfg.paths.data_dir)
        bad += not_private(modes(cfg.paths.state_dir), cfg.paths.state_dir)
        runtime = {rel: m for rel, m in modes(cfg.paths.runtime_dir).items()}
        bad += [f"runtime {rel}: {m:o}" for rel, m in runtime.items() if m & 0o077]
        assert bad == [], bad
    finally:
        proc.terminate()
        proc.wait(60)
        inst.cleanup()


def test_start_tightens_an_existing_world_readable_data_dir(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    cfg = daemon.cfg
    old_index = cfg.paths.data_dir / "index" / "0123abcd"
    for folder in (cfg.paths.data_dir, old_index, cfg.paths.state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    (old_index / "manifest.sqlite3").write_text("chunk text of every file")
    (cfg.paths.state_dir / "semdexd.log").write_text("")
    for path in (cfg.paths.data_dir, old_index.parent, old_index, cfg.paths.state_dir):
        path.chmod(0o755)
    for path in (old_index / "manifest.sqlite3", cfg.paths.state_dir / "semdexd.log"):
        path.chmod(0o644)
    before = modes(cfg.paths.data_dir)
    assert before["index/0123abcd/manifest.sqlite3"] == 0o644 and before["."] == 0o755
    try:
        started = subprocess.run([*command("semdexd"), "start", "--config", str(daemon.inst.config_file)],
                                 env=daemon.env, capture_output=True, text=True, timeout=180, umask=0o022, check=False)
        assert started.returncode == 0, started.stderr
        assert not_private(modes(cfg.paths.data_dir), cfg.paths.data_dir) == []
        state = modes(cfg.paths.state_dir)
        assert {"semdexd.log", "semdexd.pid", "semdexd.stderr"} <= set(state)
        assert not_private(state, cfg.paths.state_dir) == []
        assert daemon.has_event("permissions_tightened", cfg.paths.logfile)
    finally:
        daemon.cleanup()


def test_private_helpers_under_a_wide_umask(tmp_path: Path, umask_022: None) -> None:
    db = private_file(tmp_path / "new" / "deeper" / "x.sqlite3")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700 == stat.S_IMODE(db.parent.parent.stat().st_mode)
    readonly = tmp_path / "new" / "ro"
    readonly.write_text("x")
    readonly.chmod(0o444)
    os.symlink("/etc/hostname", tmp_path / "new" / "link")
    done, foreign = secure_tree(tmp_path / "new")
    assert stat.S_IMODE(readonly.stat().st_mode) == 0o400, "tightening never adds permissions to a file"
    assert [t.path.name for t in done] == ["ro"] and foreign == []
    assert stat.S_IMODE(os.stat("/etc/hostname").st_mode) & 0o044, "symlinks are not followed"


def test_rotated_logs_are_private(tmp_path: Path, umask_022: None) -> None:
    from semdexd.log import _PrivateRotatingFileHandler

    handler = _PrivateRotatingFileHandler(tmp_path / "semdexd.log", maxBytes=200, backupCount=2)
    logger = logging.getLogger("test_rotated_logs_are_private")
    logger.addHandler(handler)
    try:
        for i in range(20):
            logger.warning("line %d %s", i, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["semdexd.log", "semdexd.log.1", "semdexd.log.2"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o600}


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder to another user")
def test_a_data_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "theirs"
    other.mkdir()
    os.chown(other, 4242, 4242)
    with pytest.raises(PrivateDirError, match="belongs to uid 4242"):
        secure_tree(other)
    daemon = DaemonProcess(tmp_path / "d", paths={"data_dir": str(other)})
    try:
        daemon.run()
        assert daemon.wait_exit(120) == 1
        assert "belongs to uid 4242" in daemon.stderr_text()
    finally:
        daemon.cleanup()
