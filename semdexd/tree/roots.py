"""The configured folders and each one's ignore rules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from semdexd.config import Config
from semdexd.tree.ignore import IgnoreRules


class Roots:
    """The folders to index, each with its `IgnoreRules` (semdex's own data, state and runtime
    folders always excluded), and whether symlinks are followed."""

    def __init__(self, cfg: Config, folders: Sequence[Path]) -> None:
        own = (cfg.paths.data_dir, cfg.paths.state_dir, cfg.paths.runtime_dir)
        self.rules: dict[Path, IgnoreRules] = {Path(f): IgnoreRules(Path(f), cfg.index, own) for f in folders}
        self.follow_symlinks = cfg.index.follow_symlinks

    def __iter__(self) -> Iterator[Path]:
        return iter(list(self.rules))

    def __contains__(self, path: object) -> bool:
        return path in self.rules

    def __getitem__(self, root: Path) -> IgnoreRules:
        return self.rules[root]

    def items(self) -> list[tuple[Path, IgnoreRules]]:
        return list(self.rules.items())

    def root_of(self, path: Path) -> tuple[Path, IgnoreRules] | None:
        """The root ``path`` lies in (or is) and its rules; None outside every root."""
        for root, rules in self.rules.items():
            if path == root or root in path.parents:
                return root, rules
        return None
