"""Errors of the embedding engine."""

from __future__ import annotations


class ModelError(ValueError):
    """The configured model cannot be used; the message says which file or setting and why."""


class PoolClosedError(RuntimeError):
    """`EmbedPool.embed` was called on a pool that is not running (not started, or closed)."""
