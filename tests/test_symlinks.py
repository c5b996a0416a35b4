"""With ``follow_symlinks = true`` a link to a file is recorded with its TARGET's size and mtime,
so an edit of the target is noticed by the reconcile scan (issue 11.6). Targets outside the
watched folders are not watched live: the periodic reconcile (``reconcile_interval_s``) and
``semdex reindex`` pick their edits up."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import Instance, running_service, wait_for


def test_edit_of_a_followed_links_target_is_noticed(tmp_path: Path, model_info) -> None:
    folder, outside = tmp_path / "notes", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    target = outside / "target.md"
    target.write_text("# Target\n\nThe first version speaks of lanterns.\n")
    (folder / "link.md").symlink_to(target)
    (folder / "broken.md").symlink_to(outside / "missing.md")
    inst = Instance(tmp_path / "inst", [folder], index={"follow_symlinks": True})
    link = str(folder / "link.md")
    with running_service(inst, lambda svc: svc.manifest.file(link) is not None) as svc:
        row = svc.manifest.file(link)
        assert (row.kind.status, row.size, row.mtime_ns) == ("indexed", target.stat().st_size, target.stat().st_mtime_ns)
        assert svc.manifest.file(str(folder / "broken.md")).reason == "skipped: broken symlink"
        target.write_text("# Target\n\nThe second, longer version speaks of foghorns and of bells.\n")
        os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
        assert svc.indexer.scan() >= 1          # the reconcile notices the target's new stat
        wait_for(lambda: "foghorns" in " ".join(c.text for c in svc.manifest.chunks_of(link)),
                 timeout=60, what="the link re-indexed with the target's new text")
        assert svc.manifest.file(link).size == target.stat().st_size
