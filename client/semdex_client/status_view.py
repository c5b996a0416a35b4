"""``semdex status``: the daemon's status dict drawn for a person, once or refreshed.

The progress bar is hand-drawn (one line, no dependency: the client must start fast). ETA comes
from the daemon's ``eta_s`` when it sends one, else from the rate observed between refreshes.
Unknown or missing keys are skipped, so an older or newer daemon still renders.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from semdex_client.render import BOLD, GREEN, RED, YELLOW, paint

MAX_PROBLEMS = 20
BUSY_STATES = ("starting", "indexing")


def fmt_duration(seconds: float | None) -> str:
    """``75`` -> ``1m15s``; None -> ``?``."""
    if seconds is None or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """``[#########.........]  45%`` drawn with block characters."""
    frac = 0.0 if total <= 0 else min(1.0, done / total)
    filled = int(frac * width)
    return f"[{'█' * filled}{'░' * (width - filled)}] {frac * 100:3.0f}%"


class RateTracker:
    """Files per second over the last ``window_s`` seconds, from (time, files done) samples."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._window = window_s
        self._clock = clock

    def eta(self, done: int, total: int) -> float | None:
        """Seconds left at the observed rate, or None before the rate is known."""
        now = self._clock()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        if now - t0 <= 0 or done <= d0:
            return None
        return (total - done) / ((done - d0) / (now - t0))


def progress(status: dict[str, Any]) -> tuple[int, int]:
    """(files done, files total) of the index, whatever the outcome of each file."""
    done = sum(int(status.get(k) or 0) for k in ("files_indexed", "files_failed", "files_skipped"))
    total = int(status.get("files_total") or 0) or done + int(status.get("files_queued") or 0)
    return done, max(total, done)


def _state(status: dict[str, Any], color: bool) -> str:
    state = str(status.get("state", "?"))
    code = {"idle": GREEN, "error": RED, "paused": YELLOW, "degraded": YELLOW}.get(state, BOLD)
    return paint(state, code, color)


def _files_line(s: dict[str, Any]) -> str:
    parts = [f"{int(s.get('files_indexed') or 0):,} indexed"]
    for key, word in (("files_skipped", "skipped"), ("files_failed", "failed"), ("files_queued", "queued")):
        if key in s:
            parts.append(f"{int(s.get(key) or 0):,} {word}")
    return f"files: {' · '.join(parts)}   chunks: {int(s.get('chunks') or 0):,}"


def _pairs(title: str, values: dict[str, Any]) -> list[str]:
    """``title: k=v, k=v`` for the scalar items of ``values``, wrapped at 100 columns."""
    import textwrap

    text = ", ".join(f"{k}={v}" for k, v in values.items() if not isinstance(v, (dict, list)))
    return textwrap.wrap(f"{title}: {text}", 100, subsequent_indent="  ") if text else []


def _workers(pool: Any) -> list[str]:
    if not isinstance(pool, dict):
        return []
    workers = pool.get("workers")
    if not isinstance(workers, list):
        return _pairs("pool", pool)
    lines = [f"workers: {len(workers)}"]
    for w in workers:
        if isinstance(w, dict):
            bits = [f"{k}={w[k]}" for k in ("pid", "state", "rss_mb", "restarts", "texts") if k in w]
            lines.append("  " + " ".join(bits))
    return lines + _pairs("pool", {k: v for k, v in pool.items() if k != "workers"})


def _stages(stages: Any) -> list[str]:
    if not isinstance(stages, dict) or not stages:
        return []
    shares = [f"{name} {st.get('share_pct')}%" for name, st in stages.items()
              if isinstance(st, dict) and st.get("share_pct")]
    return [f"time by stage: {' · '.join(shares)}"] if shares else []


def _problems(status: dict[str, Any], limit: int) -> list[str]:
    problems = status.get("failures") or []
    if not isinstance(problems, list) or not problems:
        return []
    lines = [f"not indexed ({len(problems)}{'+' if len(problems) >= 50 else ''}):"]
    for p in problems[:limit]:
        if isinstance(p, dict):
            kind = p.get("status", "failed")
            lines.append(f"  {kind:8} {p.get('path')}: {p.get('reason')}")
    if len(problems) > limit:
        lines.append(f"  … {len(problems) - limit} more: semdex status --json")
    return lines


def render(status: dict[str, Any], *, color: bool, eta: float | None = None, problems: int = MAX_PROBLEMS) -> str:
    """The status as a few lines of text; ``eta`` (seconds) is shown with the progress bar."""
    head = [f"semdexd {status.get('version', '')}".rstrip(), _state(status, color)]
    if status.get("uptime_s") is not None:
        head.append(f"up {fmt_duration(float(status['uptime_s']))}")
    if status.get("model"):
        head.append(f"model {status['model']}")
    lines = [" · ".join(head)]
    if status.get("folders"):
        lines.append("folders: " + ", ".join(map(str, status["folders"])))
    lines.append(_files_line(status))
    lines += _words_and_meaning(status)
    done, total = progress(status)
    if status.get("state") in BUSY_STATES and total:
        lines.append(f"{progress_bar(done, total)}  {done:,}/{total:,} files  ETA {fmt_duration(eta)}")
    if status.get("state") == "paused":
        lines.append(paint("paused: resume with `semdex resume`", YELLOW, color))
    if status.get("error"):
        lines.append(paint(f"error: {status['error']}", RED, color))
    lines += _degraded(status, color)
    cache = status.get("cache")
    lines += _workers(status.get("pool")) + (_pairs("cache", cache) if isinstance(cache, dict) else [])
    lines += _stages(status.get("stages")) + _problems(status, problems)
    return "\n".join(lines)


def _words_and_meaning(status: dict[str, Any]) -> list[str]:
    """While the index is behind: how many files are findable by their words, how many by their
    meaning, each with its ETA."""
    words, meaning = status.get("words"), status.get("meaning")
    if not isinstance(words, dict) or not isinstance(meaning, dict):
        return []
    if not words.get("files_queued") and not meaning.get("chunks_awaiting"):
        return []
    total = int(words.get("files") or 0) + int(words.get("files_queued") or 0)
    chunks = int(meaning.get("chunks") or 0) + int(meaning.get("chunks_awaiting") or 0)

    def eta(part: dict[str, Any]) -> str:
        value = part.get("eta_s")
        return f"ETA {fmt_duration(float(value))}" if isinstance(value, (int, float)) else "done" if value == 0 else "ETA ?"

    return [f"words:   {int(words.get('files') or 0):,}/{total:,} files findable   "
            + ("done" if not words.get("files_queued") else eta(words)),
            f"meaning: {int(meaning.get('files') or 0):,}/{int(words.get('files') or 0):,} files, "
            f"{int(meaning.get('chunks') or 0):,}/{chunks:,} chunks   "
            + ("done" if not meaning.get("chunks_awaiting") else eta(meaning))]


def _degraded(status: dict[str, Any], color: bool) -> list[str]:
    """Why indexing is held (a failing store write, retried by itself), what is pending, and what
    waits for a restart or a rebuild."""
    out = []
    health = status.get("degraded")
    if isinstance(health, dict) and health.get("degraded"):
        retry = health.get("retry_in_s")
        when = f"; retrying in {fmt_duration(float(retry))}" if isinstance(retry, (int, float)) else ""
        out.append(paint(f"degraded: {health.get('reason')} ({int(health.get('pending_files') or 0):,} files "
                         f"pending{when}); searches answer from what is indexed", YELLOW, color))
    serving = status.get("serving")
    if isinstance(serving, dict) and serving.get("previous"):
        out.append(f"rebuilding: searches use the previous index ({serving.get('model')}) until the new one is complete")
    if status.get("restart_needed"):
        out.append(paint(f"restart needed: {status['restart_needed']}", YELLOW, color))
    return out


def summary_line(status: dict[str, Any], eta: float | None) -> str:
    """One line for logs and pipes: state, progress, ETA."""
    done, total = progress(status)
    return f"{status.get('state')}: {done:,}/{total:,} files, {int(status.get('chunks') or 0):,} chunks, ETA {fmt_duration(eta)}"


def pick_eta(status: dict[str, Any], tracker: RateTracker) -> float | None:
    """The daemon's ``eta_s`` when it has one, else the observed rate's estimate."""
    done, total = progress(status)
    observed = tracker.eta(done, total)
    daemon_eta = status.get("eta_s")
    return float(daemon_eta) if isinstance(daemon_eta, (int, float)) else observed


class Screen:
    """Redraws a block of lines in place on a terminal; prints changed summaries elsewhere."""

    def __init__(self, out: TextIO, tty: bool, quiet_s: float = 5.0) -> None:
        self._out, self._tty, self._quiet = out, tty, quiet_s
        self._height = 0
        self._last: tuple[str, float] = ("", 0.0)

    def show(self, block: str, line: str, final: bool = False) -> None:
        if self._tty:
            if self._height:
                self._out.write(f"\x1b[{self._height}F\x1b[J")
            self._out.write(block + "\n")
            self._height = block.count("\n") + 1
        else:
            now = time.monotonic()
            if final or (line != self._last[0] and now - self._last[1] >= self._quiet):
                self._out.write(line + "\n")
                self._last = (line, now)
        self._out.flush()
