"""``semdex``: the thin command-line client of semdexd.

Exit codes (scripts can trust them):
  0 ok · 1 no results (search/similar; for search: no hit at or above the score cutoff, the
  best weak hits then shown dimmed), or ``status --wait`` timed out · 2 usage error ·
  3 daemon not running · 4 the daemon returned an error (or reports state ``error``) ·
  5 communication failed (timeout, dropped connection, permission) · 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from semdex_client.api import Client, ClientError, DaemonNotRunning, RemoteError

EXIT_OK, EXIT_NO_RESULTS, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_REMOTE, EXIT_TRANSPORT = 0, 1, 2, 3, 4, 5


class UsageError(Exception):
    """Bad input on the command line: exit 2."""


# ---------------------------------------------------------------- parser


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options valid before or after the subcommand (``suppress``: don't override the former)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--socket", metavar="PATH", default=default, help="daemon socket (default: $SEMDEX_SOCKET, else from the config)")
    parser.add_argument("--config", metavar="FILE", default=default, help="semdexd config file to read the socket path from")
    parser.add_argument("--timeout", type=float, metavar="S", default=argparse.SUPPRESS if suppress else 300.0,
                        help="seconds to wait for a reply (default 300)")


def _hit_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--limit", type=int, default=10, metavar="N", help="at most N hits (default 10)")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON array of hits")
    fmt.add_argument("--jsonl", action="store_true", help="one JSON object per hit, one per line")
    fmt.add_argument("--vimgrep", action="store_true", help="path:line:col:text lines for quickfix lists")
    fmt.add_argument("-l", "--files-with-matches", action="store_true", help="only the paths of the hits, once each")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="highlight (auto: on a terminal, unless NO_COLOR is set)")
    parser.add_argument("-C", "--context", type=int, default=0, metavar="N",
                        help="N lines of context around each snippet (read from the file on disk)")
    parser.add_argument("-A", "--after-context", type=int, default=None, metavar="N", help="N lines after")
    parser.add_argument("-B", "--before-context", type=int, default=None, metavar="N", help="N lines before")


def build_parser() -> argparse.ArgumentParser:
    """The ``semdex`` command line; each subcommand stores its function in ``func``."""
    parser = argparse.ArgumentParser(prog="semdex", description="Search your files by meaning (client of semdexd).",
                                     epilog="exit codes: 0 ok, 1 no results, 2 usage, 3 daemon not running, "
                                            "4 daemon error, 5 communication failure")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
        p.set_defaults(func=func)
        return p

    search = add("search", cmd_search, "search the index")
    search.add_argument("query", nargs="+", metavar="QUERY", help="what to look for (words are joined)")
    _hit_output(search)
    search.add_argument("--path", action="append", metavar="DIR", help="only files under DIR (or that file); repeatable")
    search.add_argument("--glob", action="append", metavar="G",
                        help="only paths matching the gitignore-style glob, e.g. '*.md' or 'src/**/*.py'; relative "
                             "globs are anchored at the --path folders, else at the current folder when it is "
                             "indexed, else at the indexed folders; repeatable")
    search.add_argument("--exclude", action="append", metavar="G", help="leave out paths matching the glob; repeatable")
    search.add_argument("--type", action="append", metavar="EXT", help="only this file type, e.g. py (repeatable)")
    search.add_argument("--mode", choices=("hybrid", "semantic", "lexical"), default=None, help="default: hybrid")
    search.add_argument("--min-score", type=float, default=None, metavar="S",
                        help="score cutoff 0..1 (default: the daemon's [search] min_score; 0 shows everything)")

    similar = add("similar", cmd_similar, "find chunks similar to a file, or to the chunk at FILE:LINE")
    similar.add_argument("location", metavar="FILE[:LINE]")
    _hit_output(similar)

    status = add("status", cmd_status, "indexing progress, workers, skipped files")
    status.add_argument("--json", action="store_true", help="one JSON object (with --watch: one per refresh)")
    follow = status.add_mutually_exclusive_group()
    follow.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    follow.add_argument("--wait", action="store_true", help="refresh until the index is idle, then exit 0")
    status.add_argument("--interval", type=float, default=1.0, metavar="S", help="refresh period (default 1 s)")
    status.add_argument("--wait-timeout", type=float, default=0.0, metavar="S", help="with --wait: give up after S seconds (exit 1)")
    status.add_argument("--color", choices=("auto", "always", "never"), default="auto")

    reindex = add("reindex", cmd_reindex, "index a path (or everything) again")
    reindex.add_argument("path", nargs="?", metavar="PATH")
    add("pause", cmd_simple("pause"), "pause indexing (searches still work)")
    add("resume", cmd_simple("resume"), "resume indexing")
    embed = add("embed", cmd_embed, "embed texts as the index does; prints a JSON array of vectors")
    embed.add_argument("texts", nargs="+", metavar="TEXT")
    embed.add_argument("--json", action="store_true", help="JSON output (the only format; accepted for clarity)")
    embed.add_argument("--query", action="store_true", help="embed as queries (with the model's query prefix)")
    version = add("version", cmd_version, "client and daemon versions")
    version.add_argument("--json", action="store_true")
    add("mcp", cmd_mcp, "serve the Model Context Protocol on stdio (for AI agents), as a client of semdexd")
    return parser


# ---------------------------------------------------------------- helpers


def _client(args: argparse.Namespace) -> Client:
    from semdex_client.paths import resolve_socket_path
    from semdexd.config import ConfigError

    try:
        path = resolve_socket_path(args.socket, args.config)
    except ConfigError as exc:
        raise UsageError(f"config error: {exc}") from None
    return Client(path, timeout=args.timeout)


def _print_hits(args: argparse.Namespace, hits: list[dict[str, Any]], query: str = "",
                weak: list[dict[str, Any]] | None = None) -> int:
    """Print ``hits`` in the chosen format; with none, the ``weak`` ones (people only) or a note."""
    from semdex_client import render

    before = args.before_context if args.before_context is not None else args.context
    after = args.after_context if args.after_context is not None else args.context
    if min(before, after) < 0:
        raise UsageError("context line counts must be >= 0")
    color = render.use_color(args.color, sys.stdout)
    if args.json:
        print(render.as_json(hits))
    elif args.jsonl:
        _print_lines(render.jsonl(hits))
    elif args.vimgrep:
        _print_lines(render.vimgrep(hits))
    elif args.files_with_matches:
        _print_lines(render.files_with_matches(hits))
    elif hits:
        _print_lines(render.human(hits, color=color, cwd=Path.cwd(), query=query, before=before, after=after))
    elif weak:
        print(f"no good match; the best weak hits (below score {args.cutoff:.2f}):", file=sys.stderr)
        _print_lines(render.human(weak, color=color, cwd=Path.cwd(), query=query, before=before, after=after, weak=True))
    if not hits and not weak:
        print("no results", file=sys.stderr)
    return EXIT_OK if hits else EXIT_NO_RESULTS


def _print_lines(lines: list[str]) -> None:
    if lines:
        print("\n".join(lines))


def _limit(n: int) -> int:
    if n < 1:
        raise UsageError("-n must be at least 1")
    return n


def parse_location(arg: str) -> tuple[Path, int | None]:
    """``FILE`` or ``FILE:LINE`` -> (absolute path, line or None); the file must exist."""
    path, line = Path(arg), None
    if not path.exists():
        head, sep, tail = arg.rpartition(":")
        if sep and tail.isdigit():
            path, line = Path(head), int(tail)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    return path.expanduser().resolve(), line


# ---------------------------------------------------------------- commands


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def cmd_search(args: argparse.Namespace) -> int:
    query = " ".join(args.query)
    params: dict[str, Any] = {"query": query, "limit": _limit(args.limit), "cwd": os.getcwd()}
    if args.path:
        params["path"] = _one_or_list([os.path.expanduser(p) for p in args.path])
    if args.glob:
        params["glob"] = _one_or_list(args.glob)
    if args.exclude:
        params["exclude"] = _one_or_list(args.exclude)
    if args.type:
        params["type"] = _one_or_list([t.lstrip(".") for t in args.type])
    if args.mode:
        params["mode"] = args.mode
    if args.min_score is not None:
        if not 0.0 <= args.min_score <= 1.0:
            raise UsageError("--min-score must be between 0 and 1")
        params["min_score"] = args.min_score
    with _client(args) as client:
        result = client.call("search", **params)
    from semdex_client import render

    if result.get("indexing") or result.get("coverage"):
        print(render.indexing_notice(result.get("indexing"), result.get("coverage")), file=sys.stderr)
    if result.get("notice"):
        print(f"semdex: {result['notice']}", file=sys.stderr)
    args.cutoff = float(result.get("min_score") or 0.0)
    return _print_hits(args, list(result.get("hits") or []), query, list(result.get("weak") or []))


def cmd_similar(args: argparse.Namespace) -> int:
    path, line = parse_location(args.location)
    params: dict[str, Any] = {"path": str(path), "limit": _limit(args.limit)}
    if line is not None:
        params["line"] = line
    with _client(args) as client:
        hits = client.call("similar", **params)["hits"]
    return _print_hits(args, hits)


def cmd_status(args: argparse.Namespace) -> int:
    from semdex_client import render, status_view

    with _client(args) as client:
        def fetch() -> dict[str, Any]:
            status: dict[str, Any] = client.call("status")
            return status

        if not (args.watch or args.wait):
            status = fetch()
            color = render.use_color(args.color, sys.stdout)
            print(json.dumps(status) if args.json else status_view.render(status, color=color, eta=status.get("eta_s")))
            return EXIT_REMOTE if status.get("state") == "error" else EXIT_OK
        return _follow(args, fetch)


def _follow(args: argparse.Namespace, fetch: Callable[[], dict[str, Any]]) -> int:
    """Refresh the status until Ctrl-C (--watch) or until idle (--wait)."""
    from semdex_client import render, status_view

    tty = sys.stdout.isatty() and not args.json
    color = render.use_color(args.color, sys.stdout)
    screen = status_view.Screen(sys.stdout, tty)
    tracker = status_view.RateTracker()
    deadline = time.monotonic() + args.wait_timeout if args.wait and args.wait_timeout > 0 else None
    try:
        while True:
            status = fetch()
            eta = status_view.pick_eta(status, tracker)
            done = args.wait and status.get("state") in ("idle", "error")
            if args.json:
                if args.watch or done:
                    print(json.dumps(status), flush=True)
            else:
                screen.show(status_view.render(status, color=color, eta=eta, problems=5),
                            status_view.summary_line(status, eta), final=bool(done))
            if done and status.get("state") == "error":
                print(f"semdex: semdexd reports an error: {status.get('error')}", file=sys.stderr)
                return EXIT_REMOTE
            if done:
                return EXIT_OK
            if deadline is not None and time.monotonic() > deadline:
                print(f"semdex: still {status.get('state')} after {args.wait_timeout:.0f} s", file=sys.stderr)
                return EXIT_NO_RESULTS
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK if args.watch else 130


def cmd_reindex(args: argparse.Namespace) -> int:
    params = {"path": str(Path(args.path).expanduser().resolve())} if args.path else {}
    with _client(args) as client:
        result = client.call("reindex", **params)
    queued = result.get("queued") if isinstance(result, dict) else None
    print(f"reindex: {queued} file(s) queued" if queued is not None else "reindex: ok")
    return EXIT_OK


def cmd_simple(method: str) -> Callable[[argparse.Namespace], int]:
    """``pause`` / ``resume``: call and print the resulting state."""
    def run(args: argparse.Namespace) -> int:
        with _client(args) as client:
            result = client.call(method)
        state = result.get("state") if isinstance(result, dict) else result
        print(f"semdexd: {state}")
        return EXIT_OK
    run.__doc__ = f"semdex {method}"
    return run


def cmd_embed(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.call("embed", texts=list(args.texts), kind="query" if args.query else "passage")
    print(json.dumps(result["vectors"]))
    return EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    from semdexd import PROTOCOL_VERSION, __version__

    mine = {"version": __version__, "protocol": PROTOCOL_VERSION}
    try:
        with _client(args) as client:
            theirs = client.call("version")
    except DaemonNotRunning:
        print(json.dumps({"client": mine, "daemon": None}) if args.json else f"semdex {__version__} (daemon not running)")
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps({"client": mine, "daemon": theirs}))
    else:
        print(f"semdex {__version__} (protocol {PROTOCOL_VERSION})\nsemdexd {theirs.get('version')} "
              f"(protocol {theirs.get('protocol')}, model {theirs.get('model')})")
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    """MCP over stdin/stdout; the SDK is imported only here (see client/semdex_client/mcp_server.py)."""
    from semdex_client.mcp_server import serve

    return serve(_client(args).socket_path, args.timeout)


# ---------------------------------------------------------------- entry point


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"semdex: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DaemonNotRunning as exc:
        print(f"semdex: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except RemoteError as exc:
        print(f"semdex: semdexd refused the request: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_REMOTE
    except ClientError as exc:
        print(f"semdex: {exc}", file=sys.stderr)
        return EXIT_TRANSPORT


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``semdex``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = _run(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `semdex search x | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
