"""Watching: filesystem events and a periodic reconcile turned into paths for the indexer
(`watcher`; on Linux one inotify watch per admitted folder, `inotify`)."""
