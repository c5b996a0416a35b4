"""Where chunks start: content-defined cuts by local maximum, so an edit only moves nearby cuts.

A unit starts a chunk when its key (strength, then a hash of its text) is strictly greater than
the key of every other unit less than ``window`` tokens away, and it is at least ``window``
tokens from both ends of the text. The decision reads only the content within ``window`` tokens,
so an edit can only change cuts within ``window`` tokens of it; cuts are at least ``window`` tokens
apart. A range still above ``limit`` tokens is split at its strongest unit, recursively.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import accumulate

from semdexd.chunk.units import Unit


def segments(units: Sequence[Unit], *, window: int, limit: int) -> list[tuple[int, int]]:
    """Unit ranges ``[a, b)`` covering ``units`` in order, each at most ``limit`` tokens
    (unless a single unit is larger)."""
    if not units:
        return []
    pos = [0, *accumulate(u.tokens for u in units)]
    keys = [u.key for u in units]
    return _split(keys, pos, 0, len(units), window, limit)


def _split(keys: list[int], pos: list[int], lo: int, hi: int, window: int,
           limit: int) -> list[tuple[int, int]]:
    """Cut ``[lo, hi)`` at its local maxima, then halve any range still above ``limit``."""
    starts = [lo, *local_maxima(keys, pos, lo, hi, window), hi]
    out: list[tuple[int, int]] = []
    for a, b in zip(starts, starts[1:]):
        out.extend(_halve(keys, pos, a, b, limit, margin=window // 2))
    return out


def _halve(keys: list[int], pos: list[int], lo: int, hi: int, limit: int,
           margin: int) -> list[tuple[int, int]]:
    """Split ``[lo, hi)`` while above ``limit`` at its strongest unit at least ``margin`` tokens
    from either end. The strongest unit of a range does not move when an edit elsewhere in the
    range changes its size, so the part that was not edited keeps its exact text."""
    if pos[hi] - pos[lo] <= limit or hi - lo < 2:
        return [(lo, hi)]
    cut = _strongest(keys, pos, lo, hi, margin)
    return _halve(keys, pos, lo, cut, limit, margin) + _halve(keys, pos, cut, hi, limit, margin)


def _strongest(keys: list[int], pos: list[int], lo: int, hi: int, margin: int) -> int:
    """The unit in ``(lo, hi)`` (``hi - lo >= 2``) with the largest key, preferring the middle
    half of the range, then units ``margin`` tokens or more from both ends, then any; the
    earliest on equal keys."""
    inner = range(lo + 1, hi)
    for edge in ((pos[hi] - pos[lo]) // 4, margin, 1):
        candidates = [i for i in inner
                      if pos[i] - pos[lo] >= edge and pos[hi] - pos[i] >= edge]
        if candidates:
            return max(candidates, key=lambda i: (keys[i], -i))
    return max(inner, key=lambda i: (keys[i], -i))


def local_maxima(keys: Sequence[int], pos: Sequence[int], lo: int, hi: int,
                 window: int) -> list[int]:
    """Indices ``i`` in ``(lo, hi)`` whose key beats every key within ``window`` tokens
    inside ``(lo, hi)``, at least ``window`` tokens from ``pos[lo]`` and from ``pos[hi]``."""
    left = _window_max(keys, pos, range(lo + 1, hi), window, sign=1)
    right = _window_max(keys, pos, range(hi - 1, lo, -1), window, sign=-1)
    first, last = pos[lo] + window, pos[hi] - window
    return [i for i in range(lo + 1, hi)
            if first <= pos[i] <= last and keys[i] > left[i] and keys[i] > right[i]]


def _window_max(keys: Sequence[int], pos: Sequence[int], order: range, window: int,
                sign: int) -> list[int]:
    """``best[i]`` for each ``i`` in ``order``: the largest key among the units visited before
    ``i`` that are less than ``window`` tokens from it, or -1. A monotonic deque: O(n)."""
    best = [-1] * len(keys)
    queue: deque[int] = deque()
    for i in order:
        while queue and sign * (pos[i] - pos[queue[0]]) >= window:
            queue.popleft()
        if queue:
            best[i] = keys[queue[0]]
        while queue and keys[queue[-1]] <= keys[i]:
            queue.pop()
        queue.append(i)
    return best
