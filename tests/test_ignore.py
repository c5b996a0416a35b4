"""Ignore rules: built-in excludes, config globs, hidden files, nested .gitignore / .semdexignore."""

from pathlib import Path

from semdexd.config import IndexConfig
from semdexd.tree.ignore import IgnoreRules, walk


def make_tree(root: Path, files: list[str]) -> None:
    for rel in files:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x\n")


def found(root: Path, cfg: IndexConfig) -> set[str]:
    return {str(p.relative_to(root)) for p, _ in walk(root, IgnoreRules(root, cfg), cfg.follow_symlinks)}


def test_default_excludes_hidden_and_editor_temp(tmp_path):
    make_tree(tmp_path, ["a.py", "node_modules/x.js", ".git/config", ".hidden.md", "sub/.venv/lib.py",
                         "poetry.lock", "app.min.js", "notes.md~", "build/out.txt", "sub/b.md"])
    assert found(tmp_path, IndexConfig()) == {"a.py", "sub/b.md"}


def test_nested_gitignore_and_semdexignore(tmp_path):
    make_tree(tmp_path, ["keep.txt", "secret.txt", "sub/gen.py", "sub/hand.py", "sub/deep/gen.py",
                         "other/gen.py", "logs/a.log"])
    (tmp_path / ".gitignore").write_text("secret.txt\n*.log\n")
    (tmp_path / "sub" / ".semdexignore").write_text("gen.py\n")
    assert found(tmp_path, IndexConfig()) == {"keep.txt", "sub/hand.py", "other/gen.py",
                                              ".gitignore", "sub/.semdexignore"}


def test_deeper_ignore_file_can_reinclude(tmp_path):
    make_tree(tmp_path, ["a.log", "sub/b.log"])
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "sub" / ".gitignore").write_text("!b.log\n")
    assert {"sub/b.log"} <= found(tmp_path, IndexConfig())
    assert "a.log" not in found(tmp_path, IndexConfig())


def test_gitignore_can_be_turned_off_and_include_globs(tmp_path):
    make_tree(tmp_path, ["a.py", "b.md", "c.txt"])
    (tmp_path / ".gitignore").write_text("a.py\n")
    cfg = IndexConfig(use_gitignore=False, include=("*.py", "*.md"))
    assert found(tmp_path, cfg) == {"a.py", "b.md"}


def test_hidden_on_and_extra_excludes(tmp_path):
    make_tree(tmp_path, [".notes/a.md", "drafts/b.md", "c.md"])
    cfg = IndexConfig(hidden=True, exclude=("drafts/",))
    assert found(tmp_path, cfg) == {".notes/a.md", "c.md"}


def test_rules_invalidate_when_ignore_file_changes(tmp_path):
    make_tree(tmp_path, ["a.txt"])
    rules = IgnoreRules(tmp_path, IndexConfig())
    assert not rules.ignored(tmp_path / "a.txt", is_dir=False)
    (tmp_path / ".gitignore").write_text("a.txt\n")
    rules.invalidate(tmp_path)
    assert rules.ignored(tmp_path / "a.txt", is_dir=False)


def test_paths_outside_root_are_ignored(tmp_path):
    rules = IgnoreRules(tmp_path / "in", IndexConfig())
    assert rules.ignored(tmp_path / "out" / "x.txt", is_dir=False)


def test_walk_cuts_symlink_loops(tmp_path):
    make_tree(tmp_path, ["d/a.txt"])
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    assert found(tmp_path, IndexConfig(follow_symlinks=True)) == {"d/a.txt"}
    # not following: the link itself is listed, so the indexer can say why it skipped it
    assert found(tmp_path, IndexConfig()) == {"d/a.txt", "d/loop"}


def test_deep_tree_scan_is_linear_in_rule_evaluations(tmp_path: Path) -> None:
    """Issue 11.6: a 200-level-deep folder took 35 s to scan (every entry re-checked every
    folder above it, re-building each folder's path: quartic work). Now each folder's verdict
    is cached: one rule evaluation per entry, and the deep ignore files still apply."""
    from semdexd.config import IndexConfig
    from semdexd.tree.ignore import IgnoreRules, walk

    root = tmp_path / "deep"
    root.mkdir()
    (root / ".gitignore").write_text("*.log\n")
    folder, depth = root, 150
    for level in range(depth):
        folder = folder / f"level{level:03d}"
        folder.mkdir()
        (folder / "note.md").write_text("x")
        (folder / "noise.log").write_text("x")
    (folder / ".gitignore").write_text("note.md\n")     # the deepest folder drops its note
    rules = IgnoreRules(root, IndexConfig(folders=(root,)))
    found = walk(root, rules, follow_symlinks=False)
    names = sorted(str(p.relative_to(root)) for p, _ in found)
    notes = [n for n in names if n.endswith("note.md")]
    assert len(notes) == depth - 1 and len(names) == len(notes) + 2, names[:3]   # + 2 .gitignore
    # per level: its folder as an entry and as a parent, a note and a log (the old code: ~d²)
    bound = 4 * depth + 10
    assert rules.evaluations <= bound, (rules.evaluations, bound)
    before = rules.evaluations
    for path, _ in found:          # the indexer re-checks each file: one evaluation each
        assert not rules.ignored(path, is_dir=False)
    assert rules.evaluations - before == len(found)
