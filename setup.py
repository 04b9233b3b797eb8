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

EXTENSIONS = [
    Extension(
        "hooktel._core",
        [
            "src/hooktel/_core.c",
            "src/hooktel/_core_attributes.c",
            "src/hooktel/_core_operation.c",
            "src/hooktel/_core_asgi.c",
            "src/hooktel/_core_wsgi.c",
        ],
        depends=["src/hooktel/_core.h"],
    ),
    Extension("hooktel.otel._encoder", ["src/hooktel/otel/_encoder.c"]),
]


class OptionalBuildExt(build_ext):
    """`build_ext` that falls back to the pure-Python twin instead of failing."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (distutils' CCompilerError, OSError)
            self._notice("all", exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # a compile or link error in this one extension
            self._notice(ext.name, exc)

    @staticmethod
    def _notice(name: str, exc: Exception) -> None:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(
            f"hooktel: C extension {name} not built ({reason}); "
            "the pure-Python implementation will be used\n"
        )


no_extensions = os.environ.get("HOOKTEL_NO_EXTENSIONS", "") not in ("", "0")
setup(
    ext_modules=[] if no_extensions else EXTENSIONS,
    cmdclass={"build_ext": OptionalBuildExt},
)
