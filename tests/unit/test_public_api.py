"""The public surface of `hooktel`, and what importing it costs."""

from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
import sys
from pathlib import Path

import hooktel

REQUIRED = {
    "Hooks",
    "Instrument",
    "InstrumentKind",
    "InstrumentRef",
    "attach",
    "detach",
    "instruments",
    "is_enabled_for",
    "native_hooks",
}
SERVER_MODULES = ("hooktel.asgi", "hooktel.wsgi", "hooktel.httpserver")
# Servers, frameworks and OpenTelemetry: none may be loaded by `import hooktel`.
FORBIDDEN = (
    "opentelemetry",
    "uvicorn",
    "gunicorn",
    "hypercorn",
    "waitress",
    "granian",
    "starlette",
    "fastapi",
    "flask",
    "django",
    "werkzeug",
    "h11",
    "anyio",
    "http.server",
    "socketserver",
    "wsgiref",
    *SERVER_MODULES,
)


def _run(code: str, *flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=True,
    )


def _new_modules(statement: str, cwd: Path) -> list[str]:
    """The modules that `statement` adds to `sys.modules` in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    return list(json.loads(_run(code, cwd=cwd).stdout))


def _outside_stdlib(modules: list[str]) -> list[str]:
    return [
        name
        for name in modules
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "hooktel"
    ]


def test_all_is_sorted_and_complete() -> None:
    # Sorted as ruff sorts it: constants first, then the other names.
    assert hooktel.__all__ == sorted(hooktel.__all__, key=lambda name: (not name.isupper(), name))
    assert len(set(hooktel.__all__)) == len(hooktel.__all__)
    for name in hooktel.__all__:
        assert hasattr(hooktel, name), name
    assert set(hooktel.__all__) >= REQUIRED
    assert isinstance(hooktel.__version__, str) and hooktel.__version__


def test_instrument_kind_values() -> None:
    assert issubclass(hooktel.InstrumentKind, enum.IntEnum)
    expected = {"CUSTOM": 0, "HTTP": 1, "FETCH": 2, "SQL": 3, "REDIS": 4}
    assert {k.name: k.value for k in hooktel.InstrumentKind} == expected


def test_instrument_is_a_dataclass_with_optional_hooks() -> None:
    assert dataclasses.is_dataclass(hooktel.Instrument)
    instrument = hooktel.Instrument(kind=hooktel.InstrumentKind.HTTP, name="n", version="1")
    for hook in (
        "on_operation_start",
        "on_operation_inject",
        "on_operation_end",
        "on_operation_error",
    ):
        assert getattr(instrument, hook) is None
    assert tuple(instrument.capture_request_headers) == ()
    assert tuple(instrument.capture_response_headers) == ()


def test_import_hooktel_loads_only_the_standard_library(tmp_path: Path) -> None:
    new = _new_modules("import hooktel", tmp_path)
    assert "hooktel" in new
    assert _outside_stdlib(new) == []
    loaded = [
        name for name in new for bad in FORBIDDEN if name == bad or name.startswith(bad + ".")
    ]
    assert loaded == []


def test_server_modules_load_only_the_standard_library(tmp_path: Path) -> None:
    new = _new_modules("import " + ", ".join(SERVER_MODULES), tmp_path)
    assert set(SERVER_MODULES) <= set(new)
    assert _outside_stdlib(new) == []
    assert [name for name in new if name.startswith("opentelemetry")] == []


def test_importtime_shows_no_third_party_module(tmp_path: Path) -> None:
    """`python -X importtime` lists every module the import executed, in any package."""
    code = (
        "import json, sys\n"
        "sys.stderr.write('--start--\\n')\n"
        "import hooktel\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = _run(code, "-X", "importtime", cwd=tmp_path)
    loaded = set(json.loads(result.stdout))
    # What `site` loaded at startup (.pth hooks of the virtualenv) comes before the marker;
    # failed probes (`copy` looks for Jython's `org.python.core`) never reach sys.modules.
    after_startup = result.stderr.split("--start--\n", 1)[1]
    imported = [
        name
        for line in after_startup.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
        for name in [line.rsplit("|", 1)[1].strip()]
        if name in loaded
    ]
    assert "hooktel" in imported
    assert _outside_stdlib(imported) == []
    assert [m for m in imported for bad in FORBIDDEN if m == bad or m.startswith(bad + ".")] == []
