"""``semdexd``: run, start, stop and inspect the daemon; prepare the model; run benchmarks.

Exit codes: 0 ok; 1 failed (already running, did not start/stop, socket silent, data dir not
private); 2 usage error; 3 not running (``status``); 78 (``EX_CONFIG``) config error: the service
units do not restart on it (systemd ``RestartPreventExitStatus=78``; launchd restarts only crashes),
since a broken config stays broken until the user edits it.
The commands that write data (run, start, model, bench) set the umask to 0o077 first
(`semdexd.system.private`). Heavy modules are imported only by the command that
needs them, so ``semdexd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
EXIT_CONFIG = 78                    # sysexits.h EX_CONFIG
WRITING_COMMANDS = ("run", "start", "model", "bench")
BENCHES = ("embed", "index", "quality", "store", "chunking", "subscribe", "bombs", "scale", "watch", "findable")


class UsageError(Exception):
    """Bad command-line input: exit 2 with this message."""


class ConfigFileError(UsageError):
    """The config file is unusable: exit 78 (EX_CONFIG) with this message."""


def _config_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="config file (default: $XDG_CONFIG_HOME/semdex/config.toml)")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The full command line; each subcommand stores its function in ``func``."""
    common = _config_options()
    folders = argparse.ArgumentParser(add_help=False)
    folders.add_argument("folders", nargs="*", metavar="FOLDER", help="watch these folders too")
    folders.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser = argparse.ArgumentParser(prog="semdexd", description="Local semantic search daemon.")
    parser.add_argument("--version", action="version", version=f"semdexd {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common, folders], help="serve in the foreground (for systemd/launchd)").set_defaults(func=cmd_run)
    start = sub.add_parser("start", parents=[common, folders], help="start in the background")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the socket (default 120)")
    start.set_defaults(func=cmd_start)
    stop = sub.add_parser("stop", parents=[common], help="stop the background daemon (SIGTERM, then wait)")
    stop.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to exit (default 60)")
    stop.set_defaults(func=cmd_stop)
    status = sub.add_parser("status", parents=[common], help="is it running? pid, socket, index summary")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=cmd_status)
    model = sub.add_parser("model", help="embedding model tasks")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="TASK")
    model_sub.add_parser("prepare", parents=[common], help="convert the configured model (offline)").set_defaults(func=cmd_model_prepare)
    bench = sub.add_parser("bench", parents=[common], help="run a benchmark: " + ", ".join(BENCHES))
    bench.add_argument("name", choices=BENCHES)
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    bench.set_defaults(func=cmd_bench)
    return parser


def _version() -> str:
    from semdexd import __version__
    return __version__


def _folders(args: argparse.Namespace) -> tuple[Path, ...]:
    folders = tuple(Path(f).expanduser().resolve() for f in getattr(args, "folders", []) or [])
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"not a folder: {folder}")
    return folders


def _loader(args: argparse.Namespace) -> Callable[[], Any]:
    """A function that (re)loads the config from the same file and FOLDERs (used again on SIGHUP)."""
    from semdexd.config import load_config

    path = Path(args.config).expanduser().resolve() if args.config else None
    folders = _folders(args)
    return lambda: load_config(path, folders)


def _load(args: argparse.Namespace) -> tuple[Any, Callable[[], Any]]:
    from semdexd.config import ConfigError

    loader = _loader(args)
    try:
        return loader(), loader
    except ConfigError as exc:
        raise ConfigFileError(f"config error: {exc}") from None


# ---------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    """Serve in the foreground until SIGTERM/SIGINT; logs to stderr."""
    from semdexd.app.daemon import AlreadyRunning, serve
    from semdexd.log import get_logger, setup_logging
    from semdexd.server import SocketInUse
    from semdexd.system.private import PrivateDirError

    cfg, loader = _load(args)
    setup_logging(None, args.log_level)
    try:
        serve(cfg, loader, get_logger())
    except (AlreadyRunning, SocketInUse, PrivateDirError) as exc:
        print(f"semdexd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_start(args: argparse.Namespace) -> int:
    """Daemonise; return once the socket answers."""
    from semdexd.app.daemon import AlreadyRunning, StartFailed, start_background

    cfg, loader = _load(args)
    try:
        pid, version = start_background(cfg, loader, args.log_level, args.timeout)
    except AlreadyRunning as exc:
        print(f"semdexd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (StartFailed, OSError, RuntimeError) as exc:
        print(f"semdexd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"semdexd {version.get('version')} started (pid {pid})\n  socket: {cfg.socket_path}\n  log:    {cfg.paths.logfile}")
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    """SIGTERM the daemon and wait until it has exited."""
    from semdexd.app.daemon import stop_daemon

    cfg, _ = _load(args)
    try:
        pid = stop_daemon(cfg, args.timeout)
    except TimeoutError as exc:
        print(f"semdexd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print("semdexd is not running" if pid is None else f"semdexd stopped (pid {pid})")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Running or not; pid, socket and the index summary from the daemon."""
    from semdexd.api.rpc import call_json
    from semdexd.app.daemon import probe

    cfg, _ = _load(args)
    info = probe(cfg)
    summary: dict[str, Any] | None = None
    if info.answering:
        try:
            summary = call_json(cfg.socket_path, "status", timeout=10.0)
        except (OSError, RuntimeError, ValueError) as exc:
            summary = {"error": str(exc)}
    code = EXIT_OK if info.answering else EXIT_FAILED if info.alive else EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps({"running": info.alive or info.answering, "pid": info.pid, "socket": str(info.socket),
                          "answering": info.answering, "status": summary}))
    else:
        print(_describe_status(info, summary, cfg))
    return code


def _describe_status(info: Any, summary: dict[str, Any] | None, cfg: Any) -> str:
    if not info.alive and not info.answering:
        return "semdexd is not running. Start it with: semdexd start [FOLDER ...]"
    head = f"semdexd running (pid {info.pid or '?'})\n  socket: {info.socket}\n  log:    {cfg.paths.logfile}"
    if not info.answering:
        return head + "\n  the socket does not answer (still starting, or stuck: see the log)"
    s = summary or {}
    line = (f"  state: {s.get('state')}  files: {s.get('files_indexed', 0)} indexed, {s.get('files_failed', 0)} failed, "
            f"{s.get('files_queued', 0)} queued  chunks: {s.get('chunks', 0)}")
    return f"{head}\n{line}\n  details: semdex status"


def cmd_model_prepare(args: argparse.Namespace) -> int:
    """Convert the configured model to CTranslate2 (offline) and print where it is."""
    from semdexd.embed.model import prepare_model
    from semdexd.log import setup_logging

    cfg, _ = _load(args)
    setup_logging(None, "info")
    try:
        info = prepare_model(cfg)
    except ValueError as exc:  # ModelError: an unknown name or an unusable model directory
        print(f"semdexd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"model ready: {info.model_id} (dim {info.dim}, max {info.max_tokens} tokens)\n  {info.ct2_dir}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    """``semdexd.bench.NAME.main(args, cfg)``; its return value is the exit code."""
    import importlib

    from semdexd.log import setup_logging

    cfg, _ = _load(args)
    setup_logging(None, "info")
    module = importlib.import_module(f"semdexd.bench.{args.name}")
    result = module.main(list(args.args), cfg)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``semdexd``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command in WRITING_COMMANDS:
        from semdexd.system.lean import import_structlog
        from semdexd.system.private import restrict_umask
        restrict_umask()
        import_structlog()  # first, so that no later import brings rich in (semdexd.system.lean)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"semdexd: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, ConfigFileError) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
