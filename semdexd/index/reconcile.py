"""The reconcile scan: what the watcher may have missed, found by comparing the folders on disk
with the manifest. Run at start, periodically (`reconcile_interval_s`) and when the watcher asks
(a queue overflow, a changed ignore file). A path queued that has not changed costs the prepare
stage a stat: it compares again."""

from __future__ import annotations

import structlog

from semdexd.extract import EXTRACTOR_VERSION
from semdexd.index.changes import ChangeQueue, Urgency
from semdexd.index.metrics import Metrics
from semdexd.store.manifest import Manifest
from semdexd.tree.ignore import walk
from semdexd.tree.roots import Roots

log = structlog.get_logger()


def reconcile(roots: Roots, manifest: Manifest, queue: ChangeQueue, metrics: Metrics,
              urgency: Urgency = Urgency.BACKLOG) -> int:
    """Queue every file whose size/mtime differs from the manifest, every new file, every file
    an older extractor skipped or failed, and every recorded file that is gone or no longer under
    a folder. Returns paths queued."""
    with metrics.stage("scan"):
        known = manifest.stat_map()
        reread = set(manifest.paths_to_reread(EXTRACTOR_VERSION))
        seen: set[str] = set()
        queued = 0
        for root, rules in roots.items():
            for path, st in walk(root, rules, roots.follow_symlinks):
                key = str(path)
                seen.add(key)
                if st is None or known.get(key) != (st.st_size, st.st_mtime_ns) or key in reread:
                    queue.touch(key, urgency=urgency)
                    queued += 1
        for key in known.keys() - seen:
            queue.touch(key, urgency=urgency)
            queued += 1
    log.info("scan_done", queued=queued, known=len(known), seen=len(seen))
    return queued
