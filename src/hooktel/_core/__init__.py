"""Which implementation runs: a compiled extension, or its pure-Python twin.

Every C extension of hooktel has a Python twin that is its specification and
its fallback. `load()` returns the extension module, or None where the Python
twin must run: `HOOKTEL_PURE_PYTHON=1` asks for Python, and an extension that
was not built (no compiler at install time) falls back with a one-line notice.
`twin()` makes that choice once per extension `X` whose twin is the one module
`X_py`, and returns whichever runs; the core's twins are several modules, so
it keeps `core`, the compiled module or None.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType
from typing import Any

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


_chosen: dict[str, ModuleType] = {}


def twin(name: str, **options: Any) -> ModuleType:
    """The compiled extension `name`, or its Python twin, the module `name + "_py"`.

    Chosen once per extension: every caller gets the same module. `options` are
    what the compiled module takes from Python (its `configure(**options)`), each
    value from its one home; the Python twin reads them there itself. The twin is
    imported first, always: the module that gives the options is the twin itself
    or comes before it, so the first choice is the configured one.
    """
    if name not in _chosen:
        python = importlib.import_module(name + "_py")
        if name not in _chosen:  # importing the twin may have chosen already
            compiled = load(name)
            if compiled is not None and options:
                compiled.configure(**options)
            _chosen[name] = python if compiled is None else compiled
    return _chosen[name]


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


core = load("hooktel._core.compiled")
"""The native hook core, or None where its Python twin runs."""


def bind() -> None:
    """Give the native core what it takes from its Python twin, once, at import.

    Each value keeps one source of truth: the registry's list of hooks, the
    error reporter, the size caps and header tables are the Python modules' own.
    """
    if core is None:
        return
    import traceback

    from .._http import headers as _headers
    from .._http import request as _http
    from .._registry import errors as _errors
    from .._registry import hooks as _registry

    core.configure(
        hooks_by_kind=_registry.HOOKS_BY_KIND,
        report_hook_error=_errors.report_hook_error,
        format_exception=traceback.format_exception,
        known_methods=_http.KNOWN_METHODS,
        header_pairs=_http.header_pairs,
        merge_injected=_registry.merge_injected,
        framing_headers=_registry.FRAMING_HEADERS,
        max_injected_headers=_registry.MAX_INJECTED_HEADERS,
        cgi_scanned_keys=_http.CGI_SCANNED_KEYS,
        redacted=_headers.REDACTED,
        max_header_value=_headers.MAX_HEADER_VALUE,
        max_url=_headers.MAX_URL,
        max_message=_headers.MAX_MESSAGE,
        max_stacktrace=_headers.MAX_STACKTRACE,
        max_host=_http.MAX_HOST,
        max_tracestate=_http.MAX_TRACESTATE,
    )
