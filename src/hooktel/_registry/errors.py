"""The one place hook failures are reported: one line through `logging`, rate limited.

A broken instrument must never break a request, and must never flood the log
of a busy server either: at most `MAX_PER_SECOND` lines a second, then one
line saying how many were suppressed. The lines go to the `hooktel` logger
(an error each, the count a warning), so an app's logging configuration
decides where they end up; where logging has no handler at all (nothing
configured it), they are written to stderr as they are.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable

MAX_PER_SECOND = 10
logger = logging.getLogger("hooktel")


class RateLimitedLog:
    """Reports at most `limit` lines per one-second window (see the module docstring)."""

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
                _emit(logging.ERROR, line)
            else:
                self._suppressed += 1

    def flush(self) -> None:
        """Report what was suppressed, if anything (also runs at exit)."""
        with self._lock:
            self._flush_suppressed()

    def _flush_suppressed(self) -> None:
        if self._suppressed:
            _emit(
                logging.WARNING,
                f"[hooktel] {self._suppressed} more hook error(s) suppressed (rate limit)",
            )
            self._suppressed = 0


def _emit(level: int, line: str) -> None:
    try:
        if not logger.isEnabledFor(level):
            return
        if logger.hasHandlers():
            logger.log(level, line)
        else:  # logging not configured: stderr, as logging's last resort would, unformatted
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    except Exception:  # stderr gone (closed, detached), a broken handler: nowhere to report
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
