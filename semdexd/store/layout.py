"""Where an index lives, stated once.

Each index (one model + chunker + chunk settings, named by its key) has its own folder
``<data_dir>/index/<key>/`` holding ``manifest.sqlite3``, and its own Chroma collection
``<collection>-<key>``. A rebuild for a new model builds a second index beside the first; the old
one is removed once the new one is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semdexd.config import Config

MANIFEST_FILE = "manifest.sqlite3"


@dataclass(frozen=True)
class Layout:
    """The folders and collection names of every index under one data dir."""

    root: Path          # <data_dir>/index
    collection: str     # the configured collection prefix

    @classmethod
    def of(cls, cfg: Config) -> Layout:
        return cls(cfg.paths.data_dir / "index", cfg.store.collection)

    def folder(self, key: str) -> Path:
        return self.root / key

    def manifest(self, key: str) -> Path:
        return self.root / key / MANIFEST_FILE

    def collection_of(self, key: str) -> str:
        return f"{self.collection}-{key}"

    def keys(self) -> list[str]:
        """Keys of the index folders present, newest manifest first (folders without one last)."""
        if not self.root.is_dir():
            return []

        def age(folder: Path) -> float:
            manifest = folder / MANIFEST_FILE
            return -manifest.stat().st_mtime if manifest.is_file() else float("inf")

        return [f.name for f in sorted(self.root.iterdir(), key=age) if f.is_dir()]

    def has_manifest(self, key: str) -> bool:
        return self.manifest(key).is_file()
