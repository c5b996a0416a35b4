"""Config: TOML -> typed Config, XDG paths, clear errors."""

from pathlib import Path

import pytest

from semdexd.config import Config, ConfigError, default_paths, load_config

ROOT = Path(__file__).resolve().parent.parent


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_RUNTIME_DIR": str(tmp_path / "run")}


def test_paths_follow_xdg(tmp_path):
    paths = default_paths(env_for(tmp_path))
    assert paths.config_file == tmp_path / "cfg" / "semdex" / "config.toml"
    assert paths.data_dir == tmp_path / "data" / "semdex"
    assert paths.state_dir == tmp_path / "state" / "semdex"
    assert paths.socket == tmp_path / "run" / "semdex" / "semdexd.sock"


def test_paths_fallbacks_without_xdg(tmp_path):
    paths = default_paths({"HOME": str(tmp_path)})
    assert paths.data_dir == tmp_path / ".local" / "share" / "semdex"
    assert paths.config_file == tmp_path / ".config" / "semdex" / "config.toml"
    assert "semdex" in str(paths.runtime_dir)


def test_example_config_is_valid_and_matches_defaults(tmp_path):
    cfg = load_config(ROOT / "config.example.toml", env=env_for(tmp_path))
    defaults = load_config(None, env=env_for(tmp_path))
    for section in ("model", "pool", "index", "chunk", "store", "server", "search"):
        assert getattr(cfg, section) == getattr(defaults, section), section


def test_example_config_documents_every_key():
    text = (ROOT / "config.example.toml").read_text()
    import dataclasses
    for section in ("model", "pool", "index", "chunk", "store", "server", "search"):
        for f in dataclasses.fields(Config.__dataclass_fields__[section].default_factory()):
            assert f"{f.name} =" in text, f"[{section}] {f.name} missing from config.example.toml"


def test_folders_expand_and_merge_with_command_line(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfgfile = tmp_path / "c.toml"
    cfgfile.write_text(f'[index]\nfolders = ["{tmp_path / "a"}"]\n')
    cfg = load_config(cfgfile, extra_folders=(tmp_path / "b", tmp_path / "a"), env=env_for(tmp_path))
    assert cfg.index.folders == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())


@pytest.mark.parametrize("text, needle", [
    ("[index]\nfolderz = []\n", "unknown key"),
    ("[pool]\nworkers = \"two\"\n", "workers"),
    ("[chunk]\ntarget_tokens = 4\n", "target_tokens"),
    ("[store]\nbackend = \"mongo\"\n", "backend"),
    ("[nonsense]\n", "unknown section"),
    ("[index\n", "not valid TOML"),
    ("[index]\nhidden = 1\n", "hidden"),
    ("[server]\nmalloc_arenas = -1\n", "malloc_arenas"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(f, env=env_for(tmp_path))


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env=env_for(tmp_path))
