"""Builds hooktel's optional C extensions; every one has a pure-Python twin.

A missing compiler or missing Python headers never fail the install: the
extension is skipped with a one-line notice and hooktel runs on its Python
implementation (`hooktel.NATIVE` is then False). `HOOKTEL_NO_EXTENSIONS=1`
skips the build on purpose. All build configuration other than the
extensions is in pyproject.toml.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The C API header every extension includes (public API only), and what it vendors.
CAPI = ["src/hooktel/_core/capi.h", "src/hooktel/_core/pythoncapi_compat.h"]
EXTENSIONS = [
    Extension(
        "hooktel._core.compiled",
        [
            "src/hooktel/_core/compiled.c",
            "src/hooktel/_core/request.c",
            "src/hooktel/_core/operation.c",
            "src/hooktel/_core/middleware.c",
            "src/hooktel/_core/asgi.c",
            "src/hooktel/_core/wsgi.c",
        ],
        depends=["src/hooktel/_core/core.h", *CAPI],
    ),
    *(
        Extension(name, [source], include_dirs=["src/hooktel/_core"], depends=CAPI)
        for name, source in (
            ("hooktel.otel.spans.requestspan", "src/hooktel/otel/spans/requestspan.c"),
            ("hooktel.otel.metrics.aggregator", "src/hooktel/otel/metrics/aggregator.c"),
            ("hooktel.otel.export.encoder", "src/hooktel/otel/export/encoder.c"),
        )
    ),
]


class OptionalBuildExt(build_ext):
    """`build_ext` that falls back to the pure-Python twins instead of failing.

    Whatever was not built is said in one line at the end of the build.
    """

    def run(self) -> None:
        self._not_built: list[str] = []
        self._reason = ""
        try:
            super().run()
        except Exception as exc:  # no compiler at all (distutils' CCompilerError, OSError)
            self._skip("all", exc)
        if self._not_built:
            sys.stderr.write(
                f"hooktel: C extension {', '.join(self._not_built)} not built ({self._reason}); "
                "the pure-Python implementation will be used\n"
            )

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # a compile or link error in this one extension
            self._skip(ext.name, exc)

    def _skip(self, name: str, exc: Exception) -> None:
        self._not_built.append(name)
        self._reason = self._reason or (
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        )


no_extensions = os.environ.get("HOOKTEL_NO_EXTENSIONS", "") not in ("", "0")
setup(
    ext_modules=[] if no_extensions else EXTENSIONS,
    cmdclass={"build_ext": OptionalBuildExt},
)
