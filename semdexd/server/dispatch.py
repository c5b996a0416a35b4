"""Method name + params -> handler call -> ``(error, result)``, never an exception.

Resolution: ``search`` and ``v1.search`` name the same method; another version prefix is an
``unknown_method``, as is a name the handler map lacks. Handler exceptions map to wire errors:
ApiError as raised (the API's handlers validate their params into typed requests and raise
``invalid_params``); TypeError/KeyError/ValueError -> ``bad_request``; anything else ->
``internal`` (logged with its traceback).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from semdexd import PROTOCOL_VERSION
from semdexd.api.rpc import error, normalise_params, split_method
from semdexd.api.types import ApiError

Handler = Callable[[dict[str, Any]], Any]
Outcome = tuple[dict[str, str] | None, Any]

QUIET_METHODS = frozenset({"status", "version"})  # polled often: logged at debug level


class Dispatcher:
    """Calls the handler a request names. Thread-safe if the handlers are."""

    def __init__(self, handlers: Mapping[str, Handler], log: Any, extra_names: Sequence[str] = ()) -> None:
        self._handlers = dict(handlers)
        self._log = log
        self._names = ", ".join(sorted({*self._handlers, *extra_names}))  # listed in unknown_method

    def resolve(self, method: Any) -> Handler:
        """The handler for ``method``; raises ApiError if there is none."""
        if not isinstance(method, str) or not method:
            raise ApiError("bad_request", "method must be a non-empty string")
        version, name = split_method(method)
        if version is not None and version != PROTOCOL_VERSION:
            raise ApiError("unknown_method", f"protocol v{version} is not served (this daemon speaks "
                           f"v{PROTOCOL_VERSION}): {method!r}")
        handler = self._handlers.get(name)
        if handler is not None:
            return handler
        raise ApiError("unknown_method", f"unknown method {method!r}; methods: {self._names}")

    def dispatch(self, method: Any, params: Any) -> Outcome:
        """Run one request; returns ``(error, None)`` or ``(None, result)``."""
        started = time.perf_counter()
        outcome = self._run(method, params)
        ms = round((time.perf_counter() - started) * 1000, 2)
        err = outcome[0]
        level = "debug" if isinstance(method, str) and method in QUIET_METHODS and err is None else "info"
        getattr(self._log, level)("request", method=method if isinstance(method, str) else repr(method),
                                  ms=ms, error=err["code"] if err else None)
        return outcome

    def _run(self, method: Any, params: Any) -> Outcome:
        try:
            handler = self.resolve(method)
            kwargs = normalise_params(params)
        except ApiError as exc:
            return exc.to_wire(), None
        except ValueError as exc:
            return error("bad_request", str(exc)), None
        try:
            return None, handler(kwargs)
        except ApiError as exc:
            return exc.to_wire(), None
        except (TypeError, KeyError, ValueError) as exc:
            detail = f"missing or bad param {exc}" if isinstance(exc, KeyError) else str(exc)
            return error("bad_request", f"{method}: {detail}"), None
        except Exception as exc:  # noqa: BLE001 - a bug in a handler: report, log, keep serving
            self._log.exception("handler_failed", method=method)
            return error("internal", f"{method} failed ({type(exc).__name__}: {exc}); see the daemon log"), None
