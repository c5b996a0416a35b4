"""Ignore rules: built-in excludes, config globs, hidden files, nested .gitignore / .semdexignore."""

from pathlib import Path

from semdexd.config import IndexConfig
from semdexd.ignore import IgnoreRules, walk


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
