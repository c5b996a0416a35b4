"""One request type per API method, validated in one place (`parse`).

Each request is a frozen dataclass whose fields carry their wire contract in ``metadata``
(`param`): wire name, range, allowed values, whether it is a path. `parse(method, params)`
turns the named params a client sent into the request, or raises `ApiError` with code
``invalid_params`` (a wrong type, a value outside its documented range: never clamped, an
unknown or missing param, a relative path without ``cwd``). `METHODS` (method name -> request
type) is the single method table: the socket dispatch, the docs' schema and the MCP tools all
derive from it.

Paths: a path param may be absolute (``~`` is expanded), or relative when the request also
carries ``cwd`` (an absolute directory, the client's working directory): it is then resolved
against ``cwd``. Either way the request holds an absolute, normalised path.

Standard library only: the client imports this module and must start fast.
"""

from __future__ import annotations

import functools
import math
import os
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar


class ApiError(Exception):
    """A request the daemon refuses; becomes the error part of a socket reply.

    ``code`` is a stable machine-readable word (``bad_request``, ``unknown_method``, ``not_found``,
    ``too_large``, ``unavailable``, ``internal``); ``message`` is for a person.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


MAX_QUERY_CHARS = 2000
MAX_LIMIT = 200
MAX_PER_FILE = 50
MAX_EMBED_TEXTS = 256
MAX_EMBED_CHARS = 100_000
MAX_LIST_ITEMS = 64
MAX_STRING = 4096
MAX_EPOCH_S = 253402300799.0    # 9999-12-31T23:59:59Z: beyond it a time is a mistake
EVENTS = ("progress", "state")
MODES = ("hybrid", "semantic", "lexical")


def param(default: Any = MISSING, *, wire: str | None = None, lo: float | None = None,
          hi: float | None = None, choices: tuple[str, ...] | None = None, path: bool = False,
          non_empty: bool = False, max_len: int = MAX_STRING, doc: str = "") -> Any:
    """A request field with its wire contract (see the module docstring)."""
    meta = {"wire": wire, "lo": lo, "hi": hi, "choices": choices, "path": path,
            "non_empty": non_empty, "max_len": max_len, "doc": doc}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


class Request:
    """Base of the request types; ``method`` is the wire name, ``doc`` its one-line contract."""

    method: ClassVar[str]
    doc: ClassVar[str]


@dataclass(frozen=True)
class SearchRequest(Request):
    method: ClassVar[str] = "search"
    doc: ClassVar[str] = "Search the index: hits grouped per file, best first."
    query: str = param(non_empty=True, max_len=MAX_QUERY_CHARS, doc="what to look for")
    limit: int = param(10, lo=1, hi=MAX_LIMIT, doc="at most this many hits")
    mode: str = param("hybrid", choices=MODES, doc="hybrid (semantic + lexical, fused), semantic or lexical")
    paths: tuple[str, ...] = param((), wire="path", path=True,
                                   doc="only files under these folders (or these files); a string or a list")
    globs: tuple[str, ...] = param((), wire="glob", non_empty=True,
                                   doc="only paths matching one of these globs (*.md, src/**/*.py)")
    types: tuple[str, ...] = param((), wire="type", non_empty=True,
                                   doc="only these file types, by extension without the dot (py)")
    excludes: tuple[str, ...] = param((), wire="exclude", non_empty=True,
                                      doc="leave out paths matching any of these globs")
    since: float | None = param(None, lo=0, hi=MAX_EPOCH_S, doc="only files modified at or after this Unix time (s)")
    per_file: int = param(3, lo=1, hi=MAX_PER_FILE, doc="at most this many hits from one file")
    min_score: float | None = param(None, lo=0, hi=1, doc="drop hits below this relevance (0..1); "
                                    "absent: the daemon's configured default")
    cwd: str | None = param(None, path=True, doc="the client's working directory (absolute): relative "
                            "paths are resolved against it, and relative globs anchored at it when it "
                            "lies in an indexed folder and no path is given")


@dataclass(frozen=True)
class SimilarRequest(Request):
    method: ClassVar[str] = "similar"
    doc: ClassVar[str] = "Chunks of other files nearest to an indexed file (or to its chunk at a line)."
    path: str = param(path=True, doc="an indexed file")
    line: int | None = param(None, lo=1, hi=2**31 - 1, doc="use the chunk covering this line (1-based)")
    limit: int = param(10, lo=1, hi=MAX_LIMIT, doc="at most this many hits")


@dataclass(frozen=True)
class StatusRequest(Request):
    method: ClassVar[str] = "status"
    doc: ClassVar[str] = "The daemon's state, progress, figures and failures."


@dataclass(frozen=True)
class ReindexRequest(Request):
    method: ClassVar[str] = "reindex"
    doc: ClassVar[str] = "Index a file or folder again (default: everything)."
    path: str | None = param(None, path=True, doc="a file or folder; absent: everything")


@dataclass(frozen=True)
class PauseRequest(Request):
    method: ClassVar[str] = "pause"
    doc: ClassVar[str] = "Pause indexing; searches keep working."


@dataclass(frozen=True)
class ResumeRequest(Request):
    method: ClassVar[str] = "resume"
    doc: ClassVar[str] = "Resume indexing."


@dataclass(frozen=True)
class EmbedRequest(Request):
    method: ClassVar[str] = "embed"
    doc: ClassVar[str] = "Embed texts with the daemon's model: one unit vector per text, in order."
    texts: tuple[str, ...] = param(lo=1, hi=MAX_EMBED_TEXTS, max_len=MAX_EMBED_CHARS, doc="the texts")
    kind: str = param("passage", choices=("passage", "query"),
                      doc="passage (as chunks are embedded) or query (with the model's query prefix)")


@dataclass(frozen=True)
class VersionRequest(Request):
    method: ClassVar[str] = "version"
    doc: ClassVar[str] = "The daemon's version, protocol version and model."


@dataclass(frozen=True)
class SubscribeRequest(Request):
    method: ClassVar[str] = "subscribe"
    doc: ClassVar[str] = "Receive notifications on this connection: index progress and state changes."
    events: tuple[str, ...] = param((), choices=EVENTS, doc="which events (progress, state); absent: all")
    lua: str | None = param(None, non_empty=True, max_len=MAX_STRING,
                            doc="Neovim: send each event as nvim_exec_lua(lua, [event]) instead of a "
                                "notification named after the event")


@dataclass(frozen=True)
class UnsubscribeRequest(Request):
    method: ClassVar[str] = "unsubscribe"
    doc: ClassVar[str] = "Stop the notifications of this connection."


REQUEST_TYPES: tuple[type[Request], ...] = (
    SearchRequest, SimilarRequest, StatusRequest, ReindexRequest, PauseRequest, ResumeRequest,
    EmbedRequest, VersionRequest, SubscribeRequest, UnsubscribeRequest,
)
METHODS: dict[str, type[Request]] = {t.method: t for t in REQUEST_TYPES}
SESSION_METHODS = frozenset({"subscribe", "unsubscribe"})  # served by the connection itself
CWD = "cwd"


# ---------------------------------------------------------------- field descriptions


@dataclass(frozen=True)
class FieldSpec:
    """A request field as the wire sees it."""

    name: str           # the dataclass field
    wire: str           # the param name on the wire
    kind: type          # str, int, float or tuple (a list of strings on the wire)
    optional: bool      # None is a valid value
    required: bool
    default: Any
    meta: dict[str, Any]


def field_specs(cls: type[Request]) -> tuple[FieldSpec, ...]:
    """The wire view of ``cls``'s fields, in declaration order (computed once per method:
    resolving the type hints costs more than validating a request)."""
    if METHODS.get(cls.method) is cls:
        return _method_specs(cls.method)
    return _specs(cls)


@functools.cache
def _method_specs(method: str) -> tuple[FieldSpec, ...]:
    return _specs(METHODS[method])


def _specs(cls: type[Request]) -> tuple[FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):  # type: ignore[arg-type]
        kind, optional = _kind(hints[f.name])
        out.append(FieldSpec(f.name, f.metadata.get("wire") or f.name, kind, optional,
                             f.default is MISSING, None if f.default is MISSING else f.default,
                             dict(f.metadata)))
    return tuple(out)


def _kind(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return _kind(rest[0])[0], True
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple, False
    return hint, False


def takes_cwd(cls: type[Request]) -> bool:
    """True if the method has a path param (and so accepts ``cwd``)."""
    return any(s.meta.get("path") for s in field_specs(cls))


# ---------------------------------------------------------------- validation


def invalid(message: str) -> ApiError:
    return ApiError("invalid_params", message)


def parse(method: str, params: dict[str, Any]) -> Request:
    """The typed request for ``method`` from named ``params``; raises ApiError(invalid_params).

    ``method`` must be a key of `METHODS`. A param that is null counts as absent.
    """
    cls = METHODS[method]
    specs = field_specs(cls)
    known = {s.wire for s in specs} | ({CWD} if takes_cwd(cls) else set())
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise invalid(f"{method}: unknown param(s) {', '.join(unknown)}; accepted: {accepted}")
    cwd = _cwd(method, params.get(CWD)) if CWD in known else None
    values: dict[str, Any] = {}
    for spec in specs:
        raw = params.get(spec.wire)
        if raw is None:
            if spec.required:
                raise invalid(f"{method}: missing param {spec.wire}")
            continue
        values[spec.name] = _value(method, spec, raw, cwd)
    return cls(**values)


def _cwd(method: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > MAX_STRING or "\0" in raw or not os.path.isabs(raw):
        raise invalid(f"{method}: cwd must be an absolute directory path")
    return raw


def _value(method: str, spec: FieldSpec, raw: Any, cwd: str | None) -> Any:
    where = f"{method}: {spec.wire}"
    if spec.kind is tuple:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise invalid(f"{where} must be a string or a list of strings")
        lo, hi = spec.meta.get("lo"), spec.meta.get("hi") or MAX_LIST_ITEMS
        if lo is not None and len(items) < lo or len(items) > hi:
            raise invalid(f"{where} must hold {int(lo or 0)}..{int(hi)} strings, not {len(items)}")
        return tuple(_string(where, spec, s, cwd) for s in items)
    if spec.kind is str:
        return _string(where, spec, raw, cwd)
    if spec.kind is int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise invalid(f"{where} must be an integer, not {_typename(raw)}")
        return _ranged(where, spec, raw)
    if spec.kind is float:
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            raise invalid(f"{where} must be a number, not {_typename(raw)}")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise invalid(f"{where} must be a finite number")
        return float(_ranged(where, spec, raw))
    raise AssertionError(f"unsupported field kind {spec.kind!r}")  # a bug in a request type


def _string(where: str, spec: FieldSpec, raw: Any, cwd: str | None) -> str:
    if not isinstance(raw, str):
        raise invalid(f"{where} must be a string, not {_typename(raw)}")
    meta = spec.meta
    if "\0" in raw:
        raise invalid(f"{where} must not contain NUL")
    if len(raw) > meta.get("max_len", MAX_STRING):
        raise invalid(f"{where} is longer than {meta.get('max_len', MAX_STRING)} characters")
    if (meta.get("non_empty") or meta.get("path")) and not raw.strip():
        raise invalid(f"{where} must not be empty")
    choices = meta.get("choices")
    if choices and raw not in choices:
        raise invalid(f"{where} must be one of {', '.join(choices)}, not {raw!r}")
    return _path(where, raw, cwd) if meta.get("path") else raw


def _path(where: str, raw: str, cwd: str | None) -> str:
    path = os.path.expanduser(raw)
    if not os.path.isabs(path):
        if cwd is None:
            raise invalid(f"{where} is relative ({raw!r}): send an absolute path, or cwd (the "
                          "absolute directory it is relative to)")
        path = os.path.join(cwd, path)
    return os.path.normpath(path)


def _ranged(where: str, spec: FieldSpec, value: float) -> int | float:
    lo, hi = spec.meta.get("lo"), spec.meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise invalid(f"{where} must be in {_num(lo)}..{_num(hi)}, not {_num(value)}")
    return value


def _num(x: float | None) -> str:
    if x is None:
        return ""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    text = repr(x)
    return text if len(text) <= 24 else f"{float(x):.3g}"


def _typename(raw: Any) -> str:
    return {dict: "an object", list: "a list", tuple: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(raw), type(raw).__name__)


def to_params(req: Request) -> dict[str, Any]:
    """The wire params of ``req`` that differ from their defaults (lists for tuples)."""
    out: dict[str, Any] = {}
    for spec in field_specs(type(req)):
        value = getattr(req, spec.name)
        if spec.required or value != spec.default:
            out[spec.wire] = list(value) if isinstance(value, tuple) else value
    return out
