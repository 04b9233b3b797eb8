"""Run code right after a module is imported: how hooktel patches a framework lazily.

`when_imported(name, patcher)` runs `patcher(module)` at once when module
`name` is already imported, else right after its first import, from a
`sys.meta_path` finder that wraps only that module's loader. So installing
hook points imports no framework the app does not use, and a framework
imported later is still patched. A patcher that raises is logged, never
passed on: a framework version hooktel does not know must not break its import.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_log = logging.getLogger("hooktel")

Patcher = Callable[[ModuleType], None]

_lock = threading.RLock()
_waiting: dict[str, list[Patcher]] = {}  # module name -> patchers to run once it is imported


def when_imported(name: str, patcher: Patcher) -> None:
    """Run `patcher(module)` now if module `name` is imported, else right after its import."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _waiting.setdefault(name, []).append(patcher)
            if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
                sys.meta_path.insert(0, _PatchOnImport())
            return
    _run(name, module, [patcher])


def _run(name: str, module: ModuleType, patchers: Sequence[Patcher]) -> None:
    for patcher in patchers:
        try:
            patcher(module)
        except Exception as exc:  # a framework version we do not know must not break its import
            _log.warning("hooktel: could not patch %s (%s: %s)", name, type(exc).__name__, exc)


class _PatchOnImport:
    """A `sys.meta_path` finder that only wraps the loaders of the modules waited for."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in _waiting:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchAfterExec(spec.loader, fullname)  # type: ignore[assignment]
                return spec
        return None


class _PatchAfterExec:
    """The module's own loader, then the patchers waiting for it."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        with _lock:
            patchers = _waiting.pop(self._name, [])
        _run(self._name, module, patchers)

    def __getattr__(self, name: str) -> Any:  # get_data, is_package, resource readers, ...
        return getattr(self._loader, name)


def cancel(patchers: Sequence[Patcher]) -> None:
    """Forget `patchers` where they still wait for their module."""
    with _lock:
        for name in list(_waiting):
            _waiting[name] = [p for p in _waiting[name] if p not in patchers]
