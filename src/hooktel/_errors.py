"""The one place hook failures are reported: a line on stderr, rate limited.

A broken instrument must never break a request, and must never flood the log
of a busy server either: at most `MAX_PER_SECOND` lines a second, then one
line saying how many were suppressed.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections.abc import Callable

MAX_PER_SECOND = 10


class RateLimitedLog:
    """Writes at most `limit` lines per one-second window to stderr."""

    def __init__(self, limit: int = MAX_PER_SECOND, clock: Callable[[], float] = time.monotonic):
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1.0
        self._written = 0
        self._suppressed = 0

    def write(self, line: str) -> None:
        with self._lock:
            now = self._clock()
            if now - self._window >= 1.0:
                self._flush_suppressed()
                self._window = now
                self._written = 0
            if self._written < self._limit:
                self._written += 1
                _emit(line)
            else:
                self._suppressed += 1

    def flush(self) -> None:
        """Report what was suppressed, if anything (also runs at exit)."""
        with self._lock:
            self._flush_suppressed()

    def _flush_suppressed(self) -> None:
        if self._suppressed:
            _emit(f"[hooktel] {self._suppressed} more hook error(s) suppressed (rate limit)")
            self._suppressed = 0


def _emit(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:  # stderr gone (closed, detached): nowhere left to report
        pass


hook_errors = RateLimitedLog()
atexit.register(hook_errors.flush)


def report_hook_error(hook: str, name: str, version: str, exc: BaseException) -> None:
    """Log that `hook` of instrument `name` raised `exc`; never raises itself."""
    try:
        message = str(exc).replace("\r", " ").replace("\n", " ")[:500]
    except Exception:  # an exception whose __str__ raises still gets its line
        message = "<unprintable exception>"
    hook_errors.write(
        f"[hooktel] Error in {hook} ({name} v{version}): {type(exc).__name__}: {message}"
    )
