"""hooktel: zero-cost lifecycle telemetry hooks for Python HTTP servers.

Servers call `native_hooks()` at each request's lifecycle points and get
`None` when no instrument is attached; instruments `attach()` to receive
OpenTelemetry-convention attributes. Importing this package imports nothing
outside the standard library.
"""

from __future__ import annotations

from . import _core
from ._registry.hooks import (
    Hooks,
    InstrumentRef,
    attach,
    detach,
    instruments,
    is_enabled_for,
    native_hooks,
)
from ._registry.instrument import Attributes, Instrument, InstrumentInfo, InstrumentKind

__version__ = "0.1.0"

_core.bind()
NATIVE: bool = _core.core is not None
"""True when the compiled hook core runs; False where its pure-Python twin does
(`HOOKTEL_PURE_PYTHON=1`, or no compiler when hooktel was installed)."""

__all__ = [
    "NATIVE",
    "Attributes",
    "Hooks",
    "Instrument",
    "InstrumentInfo",
    "InstrumentKind",
    "InstrumentRef",
    "__version__",
    "attach",
    "detach",
    "instruments",
    "is_enabled_for",
    "native_hooks",
]
