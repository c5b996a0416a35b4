"""Errors that cross a boundary as values a user can act on."""

from __future__ import annotations


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
