"""Which files are ours: the ignore rules (`ignore`: built-in excludes, globs, `.gitignore`) and
the pseudo filesystems never entered (`mounts`). Read by the watcher and the indexer alike."""
