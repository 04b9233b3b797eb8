"""Which implementation runs: a compiled extension, or its pure-Python twin.

Every C extension of hooktel has a Python twin that is its specification and
its fallback. `load()` returns the extension module, or None where the Python
twin must run: `HOOKTEL_PURE_PYTHON=1` asks for Python, and an extension that
was not built (no compiler at install time) falls back with a one-line notice.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

ENV_PURE_PYTHON = "HOOKTEL_PURE_PYTHON"
PURE_PYTHON = os.environ.get(ENV_PURE_PYTHON, "").strip() not in ("", "0", "false", "no", "off")

_noticed = False


def load(name: str) -> ModuleType | None:
    """The compiled module `name`, or None when the Python twin is to be used."""
    if PURE_PYTHON:
        return None
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _notice(name, exc)
        return None


def _notice(name: str, exc: ImportError) -> None:
    global _noticed  # noqa: PLW0603 - one notice per process, whichever extension is missing
    if not _noticed:
        _noticed = True
        logging.getLogger("hooktel").warning(
            "hooktel: compiled extension %s not available (%s); using the pure-Python "
            "implementation (set %s=1 to choose it and silence this notice)",
            name,
            exc,
            ENV_PURE_PYTHON,
        )


core = load("hooktel._core")
"""The native hook core, or None where its Python twin runs."""
