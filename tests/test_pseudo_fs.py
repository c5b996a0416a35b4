"""Watching / or $HOME: no descent into pseudo filesystems (by path and by mount type), caches,
package stores, trash, or the daemon's own folders."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from semdexd.config import IndexConfig
from semdexd.tree.ignore import IgnoreRules, walk, watch_points
from semdexd.tree.mounts import MountTable, parse_mountinfo, pseudo_paths_below


def tree(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")


def found(root: Path, cfg: IndexConfig, own: tuple[Path, ...] = ()) -> set[str]:
    return {str(p.relative_to(root)) for p, _ in walk(root, IgnoreRules(root, cfg, own), cfg.follow_symlinks)}


def test_caches_stores_and_trash_are_skipped_even_with_hidden_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tree(home, ["notes/plan.md", ".cache/pip/x.txt", ".npm/_cacache/index.txt", ".gradle/caches/a.txt",
                ".m2/repository/a.pom", ".cargo/registry/src/lib.rs", ".cargo/config.toml",
                ".local/share/Trash/files/old.md", "Library/Caches/app/x.txt", "web/node_modules/a.js",
                "web/bower_components/b.js", "proj/.git/HEAD", "nb/.ipynb_checkpoints/a.ipynb",
                ".Trash-1000/files/x.md", "Library/Notes/keep.md"])
    assert found(home, IndexConfig(hidden=True)) == {"notes/plan.md", ".cargo/config.toml", "Library/Notes/keep.md"}
    assert "Library/Caches/app/x.txt" in found(home, IndexConfig(hidden=True, default_excludes=False))


def test_the_daemons_own_folders_are_never_indexed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tree(home, ["notes/a.md", ".local/share/semdex/index/k/x.txt", ".local/state/semdex/semdexd.log",
                "mydata/semdex/manifest.txt"])
    own = (home / ".local/share/semdex", home / ".local/state/semdex", home / "mydata/semdex")
    assert found(home, IndexConfig(hidden=True), own) == {"notes/a.md"}
    rules = IgnoreRules(home, IndexConfig(hidden=True), own)
    assert rules.ignored(home / "mydata/semdex/manifest.txt", False)  # a watcher event there, too
    inside = IgnoreRules(home / "mydata", IndexConfig(), (home / "mydata",))
    assert not inside.ignored(home / "mydata/semdex/manifest.txt", False), "only folders strictly below a root"


def test_pseudo_paths_below_a_watched_root() -> None:
    assert {str(p) for p in pseudo_paths_below(Path("/"))} == {"/proc", "/sys", "/dev", "/run", "/var/run"}
    assert pseudo_paths_below(Path("/home/ann")) == ()
    assert pseudo_paths_below(Path("/run/media/ann/usb")) == ()
    rules = IgnoreRules(Path("/"), IndexConfig(hidden=True))
    for path in ("/proc/1/status", "/sys/kernel", "/dev/null", "/run/user/1000/x", "/proc"):
        assert rules.ignored(Path(path), path == "/sys/kernel"), path
    assert not rules.ignored(Path("/home/ann/notes.md"), False)
    usb = IgnoreRules(Path("/run/media/ann/usb"), IndexConfig())
    assert not usb.ignored(Path("/run/media/ann/usb/report.md"), False), "a root inside /run is the user's choice"


def test_parse_mountinfo_types_and_escaped_paths(tmp_path: Path) -> None:
    text = ("22 27 0:21 / /proc rw,relatime - proc proc rw\n"
            "36 27 8:1 / /home rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
            "40 36 0:50 / /home/ann/My\\040Drive rw master:7 - fuse.rclone drive: rw\n"
            "41 27 0:51 / /tmp/shm rw - tmpfs tmpfs rw\n"
            "garbage\n")
    mounts = parse_mountinfo(text)
    assert mounts == {Path("/proc"): "proc", Path("/home"): "ext4", Path("/home/ann/My Drive"): "fuse.rclone",
                      Path("/tmp/shm"): "tmpfs"}
    source = tmp_path / "mountinfo"
    source.write_text(text)
    table = MountTable(source)
    assert table.is_pseudo(Path("/proc")) and table.is_pseudo(Path("/tmp/shm"))
    assert not table.is_pseudo(Path("/home")) and not table.is_pseudo(Path("/home/ann/My Drive"))
    assert not table.is_pseudo(Path("/home/ann"))


@pytest.fixture
def mounted(tmp_path: Path):
    """Mount a tmpfs and a procfs inside a tree (needs root and mount rights; skipped otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs/procfs needs root")
    root = tmp_path / "root"
    tree(root, ["docs/a.md"])
    done: list[Path] = []
    for name, fstype in (("scratch", "tmpfs"), ("proc-copy", "proc")):
        target = root / name
        target.mkdir()
        result = subprocess.run(["mount", "-t", fstype, "-o", "size=1m" if fstype == "tmpfs" else "ro",
                                 fstype, str(target)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            for path in done:
                subprocess.run(["umount", str(path)], check=False)
            pytest.skip(f"cannot mount {fstype} here: {result.stderr.strip()}")
        done.append(target)
    (root / "scratch" / "b.md").write_text("in a tmpfs\n")
    yield root
    for path in reversed(done):
        subprocess.run(["umount", str(path)], check=False)


def test_a_scan_does_not_cross_into_pseudo_mounts(mounted: Path) -> None:
    assert (mounted / "proc-copy" / "self" / "status").exists()
    assert found(mounted, IndexConfig(hidden=True)) == {"docs/a.md"}
    # The check is what skipped them (walking all of procfs would take long: leave it out here).
    without = IndexConfig(hidden=True, default_excludes=False, exclude=("proc-copy/",))
    assert found(mounted, without) == {"docs/a.md", "scratch/b.md"}
    assert IgnoreRules(mounted, IndexConfig()).pseudo_mount(mounted / "proc-copy")
    assert not IgnoreRules(mounted, without).pseudo_mount(mounted / "proc-copy")


def test_watching_root_sets_no_watch_in_pseudo_filesystems(tmp_path: Path) -> None:
    assert watch_points(tmp_path, IgnoreRules(tmp_path, IndexConfig())) == [(tmp_path, True)]
    points = watch_points(Path("/"), IgnoreRules(Path("/"), IndexConfig()))
    assert points[0] == (Path("/"), False), "the root alone, for files and folders created in it"
    recursive = {p for p, rec in points[1:] if rec}
    assert len(recursive) == len(points) - 1 and Path("/usr") in recursive
    assert not recursive & {Path("/proc"), Path("/sys"), Path("/dev"), Path("/run")}
