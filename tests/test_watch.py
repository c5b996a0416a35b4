"""The live watcher on Linux: inotify watches only on admitted folders, kept in step with the tree.

Real Service (model, worker, Chroma, manifest) on real files. What the kernel holds is read from
/proc/self/fdinfo of every inotify fd of this process (one ``inotify wd: ... ino:<hex>`` line per
watch), so the assertions hold whatever the watcher's own table says.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

from semdexd.bench.watch import kernel_watches
from semdexd.app.service import Service
from tests.support import Instance, running_service, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")

IGNORED = ("node_modules/pkg/lib", ".cache/thumbs", ".git/objects/ab", "generated/deep")


def watched_folders(root: Path) -> set[str]:
    """The folders under ``root`` (and root itself as '.') that have a kernel watch."""
    by_inode = {root.stat().st_ino: "."}
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = Path(folder) / name
            by_inode[path.stat().st_ino] = str(path.relative_to(root))
    return {by_inode[ino] for ino in kernel_watches() if ino in by_inode}


def indexed(svc: Service, path: Path) -> bool:
    row = svc.manifest.file(str(path))
    return row is not None and row.kind.status == "indexed" and row.mtime_ns == path.stat().st_mtime_ns


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    for rel in ("notes/a.md", "notes/sub/c.md", *(f"{d}/x.md" for d in IGNORED)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n\nThe first version of {rel}.\n")
    (root / ".gitignore").write_text("generated/\n")
    return root


@pytest.fixture
def service(tmp_path: Path, model_info, home: Path):
    with running_service(Instance(tmp_path / "inst", [home], index={"hidden": True})) as svc:
        yield svc


ADMITTED = {".", "notes", "notes/sub"}


def test_ignored_folders_get_no_watch_and_their_writes_are_never_indexed(service: Service, home: Path) -> None:
    assert watched_folders(home) == ADMITTED
    assert len(kernel_watches()) == len(ADMITTED), "no watch anywhere else either"
    assert {str(p.relative_to(home)) or "." for p in service.watcher.backend.watched()} == ADMITTED
    for rel in IGNORED:  # writes into every ignored folder, then one admitted file as a marker
        for i in range(5):
            (home / rel / f"new{i}.md").write_text(f"written into {rel}, round {i}\n")
    marker = home / "notes" / "marker.md"
    marker.write_text("written after the ignored ones\n")
    wait_for(lambda: indexed(service, marker), what="the marker indexed")
    wait_for(lambda: service.state() == "idle", what="idle")
    paths = set(service.manifest.all_paths())
    assert paths == {str(home / p) for p in ("notes/a.md", "notes/sub/c.md", "notes/marker.md", ".gitignore")}
    assert watched_folders(home) == ADMITTED


def watcher_threads() -> list[str]:
    """Threads of watchdog's classes (observers, emitters, inotify readers) and the reconciler."""
    return sorted(t.name for t in threading.enumerate()
                  if type(t).__module__.startswith("watchdog") or t.name == "reconcile")


def test_one_reader_thread_whatever_the_number_of_folders(service: Service, home: Path) -> None:
    assert watcher_threads() == ["inotify", "reconcile"]
    for i in range(300):
        (home / "notes" / "many" / f"f{i:03}").mkdir(parents=True)
    wait_for(lambda: len(watched_folders(home)) == len(ADMITTED) + 301, what="300 new folders watched")
    assert watcher_threads() == ["inotify", "reconcile"]


def test_a_nested_folder_created_at_once_is_watched_and_indexed(service: Service, home: Path) -> None:
    deep = home / "notes" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "file.md").write_text("created with its folders, before any watch could exist\n")
    wait_for(lambda: indexed(service, deep / "file.md"), what="the nested file indexed")
    wait_for(lambda: {"notes/a", "notes/a/b", "notes/a/b/c"} <= watched_folders(home), what="the new folders watched")
    later = deep / "later.md"
    later.write_text("written once the watch is there\n")  # only an event on c's own watch finds it
    wait_for(lambda: indexed(service, later), what="a file written later in the new folder indexed")


def test_a_folder_renamed_into_an_ignored_name_loses_its_watch(service: Service, home: Path) -> None:
    (home / "notes" / "sub").rename(home / "notes" / "node_modules")
    wait_for(lambda: service.manifest.file(str(home / "notes/sub/c.md")) is None, what="the moved file forgotten")
    assert watched_folders(home) == {".", "notes"}
    assert len(kernel_watches()) == 2
    (home / "notes" / "node_modules" / "d.md").write_text("inside the renamed folder\n")
    (home / "notes" / "marker.md").write_text("marker\n")
    wait_for(lambda: indexed(service, home / "notes" / "marker.md"), what="the marker indexed")
    wait_for(lambda: service.state() == "idle", what="idle")
    assert not any("node_modules" in p for p in service.manifest.all_paths())
    (home / "notes" / "node_modules").rename(home / "notes" / "back")   # and out again: watched
    wait_for(lambda: indexed(service, home / "notes" / "back" / "d.md"), what="the folder moved back indexed")
    assert watched_folders(home) == {".", "notes", "notes/back"}


def test_a_gitignore_edit_admits_and_then_ignores_a_folder(service: Service, home: Path) -> None:
    generated = home / "generated" / "deep" / "x.md"
    assert "generated" not in watched_folders(home) and service.manifest.file(str(generated)) is None
    (home / ".gitignore").write_text("# nothing ignored now\n")
    wait_for(lambda: indexed(service, generated), what="the newly admitted folder's file indexed")
    wait_for(lambda: {"generated", "generated/deep"} <= watched_folders(home), what="the admitted folders watched")
    new = home / "generated" / "deep" / "new.md"
    new.write_text("written in a newly watched folder\n")
    wait_for(lambda: indexed(service, new), what="a new file there indexed")
    (home / ".gitignore").write_text("generated/\n")
    wait_for(lambda: service.manifest.file(str(generated)) is None, what="the newly ignored file forgotten")
    wait_for(lambda: watched_folders(home) == ADMITTED, what="the ignored folders unwatched")


def test_an_overflow_resyncs_the_watches_and_rescans(service: Service, home: Path) -> None:
    tree = service.watcher.backend
    tree._drop([home / "notes" / "sub"])   # as if its events (and its watch) had been lost
    missed = home / "notes" / "sub" / "missed.md"
    missed.write_text("nobody saw this one\n")
    assert watched_folders(home) == {".", "notes"}
    tree.on_queue_overflow()   # as watchdog's reader calls them: every callback's overflow, then the loss
    tree.on_events_lost()
    wait_for(lambda: indexed(service, missed), what="the missed file indexed by the rescan")
    assert watched_folders(home) == ADMITTED


def test_a_root_deleted_and_created_again_is_watched_after_a_rescan(service: Service, home: Path) -> None:
    shutil.rmtree(home)
    wait_for(lambda: not service.watcher.backend.watched(), what="every watch gone with the tree")
    home.mkdir()
    (home / "back.md").write_text("the folder is back\n")
    service.watcher.rescan()
    wait_for(lambda: indexed(service, home / "back.md"), what="the file in the new root indexed")
    wait_for(lambda: watched_folders(home) == {"."}, what="the new root watched")
    later = home / "later.md"
    later.write_text("only its watch can report this one\n")
    wait_for(lambda: indexed(service, later), what="a later file indexed live")


def test_the_observer_used_off_linux_still_feeds_the_indexer(service: Service, home: Path) -> None:
    from semdexd.watch.watcher import Watcher

    service.watcher.stop()
    assert service.parts is not None
    service.parts.watcher = Watcher(service.indexer, 0, use_inotify=False)  # watchdog's Observer, as on macOS
    service.watcher.start()
    from semdexd.watch.observer import ObserverBackend

    assert isinstance(service.watcher.backend, ObserverBackend)
    note = home / "notes" / "observed.md"
    note.write_text("seen by the recursive observer\n")
    wait_for(lambda: indexed(service, note), what="a file indexed through the Observer")


def test_a_new_folder_holding_a_followed_link_to_a_folder_is_expanded(tmp_path: Path, model_info) -> None:
    folder, outside = tmp_path / "notes", tmp_path / "elsewhere"
    folder.mkdir()
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "linked.md").write_text("reached through a link\n")
    with running_service(Instance(tmp_path / "inst", [folder], index={"follow_symlinks": True})) as svc:
        (folder / "new").mkdir()
        (folder / "new" / "link").symlink_to(outside)
        linked = folder / "new" / "link" / "inner" / "linked.md"
        wait_for(lambda: indexed(svc, linked), what="the file behind the link in a new folder indexed")
        (folder / "link2").symlink_to(outside / "inner")   # a link created in a watched folder
        wait_for(lambda: indexed(svc, folder / "link2" / "linked.md"), what="the file behind a new link indexed")
        assert watched_folders(folder) == {".", "new"}, "a linked folder is not watched (the reconcile covers it)"
