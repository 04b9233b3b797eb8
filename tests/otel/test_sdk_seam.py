"""Nothing in hooktel names a private part of OpenTelemetry outside the seam, `hooktel/otel/_sdk/`.

Every Python and C source under src/hooktel except the seam's own modules is scanned,
with no exemption, for:
- an import of a private OpenTelemetry module or name (`opentelemetry.x._internal`,
  `from opentelemetry.trace.propagation import _SPAN_KEY`), also as a C string;
- a private attribute (`obj._name`, `getattr(obj, "_name")`) of an OpenTelemetry object,
  or of a class the object's class inherits from OpenTelemetry (`self._x` in a span
  class), except the `ReadableSpan` fields the seam lists (`READABLE_FIELDS`: its layout
  probe turns the fast path off where the SDK keeps them otherwise);
- a string literal naming a private field of `ReadableSpan` or the SDK's tracer (as in the
  names a span class is built with), and, in C, of any OpenTelemetry object.

"Private OpenTelemetry name" is read off the installed API and SDK: every `_`-prefixed
name in their modules and classes, and in the objects hooktel handles (a span, a tracer,
its provider, attributes, trace state, the runtime context, a histogram's metric streams).
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import TraceState

from hooktel.otel import _sdk
from hooktel.otel._sdk import trace as trace_seam

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "hooktel"
SEAM = SRC / "otel" / "_sdk"
OWN = {"self", "cls"}
ACCESSORS = {"getattr", "hasattr", "setattr", "delattr"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _privates(obj: Any) -> set[str]:
    names = set(vars(obj)) if hasattr(obj, "__dict__") else set()
    return {name for name in names | set(dir(obj)) if _is_private(name)}


def _reachable(root: Any, depth: int = 6) -> Iterator[Any]:
    """`root` and the OpenTelemetry objects its fields hold, `depth` fields deep."""
    seen: set[int] = set()
    todo = [(root, 0)]
    while todo:
        obj, level = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            todo += [(value, level) for value in obj.values()]
        elif isinstance(obj, (list, tuple)):
            todo += [(value, level) for value in obj]
        elif type(obj).__module__.startswith("opentelemetry"):
            yield obj
            if level < depth and hasattr(obj, "__dict__"):
                todo += [(value, level + 1) for value in vars(obj).values()]


def _opentelemetry_privates() -> tuple[set[str], set[str]]:
    """(every private OpenTelemetry name, those of `ReadableSpan` and the SDK's tracer)."""
    span = ReadableSpan("probe")
    provider = TracerProvider()
    tracer = provider.get_tracer("probe")
    histogram = (
        MeterProvider(metric_readers=[InMemoryMetricReader()])
        .get_meter("probe")
        .create_histogram("probe")
    )
    histogram.record(1.0, {"k": "v"})
    probes = [span, tracer, provider, BoundedAttributes(), TraceState([("k", "v")]), histogram]
    probes.append(getattr(context_api, "_RUNTIME_CONTEXT"))  # noqa: B009 - a test may look
    names: set[str] = set()
    for probe in probes:
        for obj in _reachable(probe):
            names |= _privates(obj) | _privates(type(obj))
    for name, module in list(sys.modules.items()):
        if name.startswith("opentelemetry") and module is not None:
            names |= _privates(module)
            for value in vars(module).values():
                if isinstance(value, type) and value.__module__.startswith("opentelemetry"):
                    names |= _privates(value)
    fields = _privates(span) | _privates(type(span)) | _privates(tracer) | _privates(type(tracer))
    return names, fields


PRIVATE, FIELDS = _opentelemetry_privates()


def _sources(suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        path
        for path in SRC.rglob("*")
        if path.suffix in suffixes and SEAM not in path.parents and "__pycache__" not in path.parts
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private_module(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] == "opentelemetry" and any(
        _is_private(part) for part in module.split(".")
    )


def _inherited(path: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Per class of `path` with an OpenTelemetry base: (the private names it inherits,
    those of them it may use: the seam's `READABLE_FIELDS` where it is a `ReadableSpan`)."""
    module = importlib.import_module(_module_name(path))
    found = {}
    for name, cls in vars(module).items():
        if not isinstance(cls, type) or cls.__module__ != module.__name__:
            continue
        bases = [base for base in cls.__mro__ if base.__module__.startswith("opentelemetry")]
        if bases:
            names = set().union(*(_privates(base) for base in bases))
            allowed: set[str] = set()
            if issubclass(cls, ReadableSpan):
                names |= FIELDS
                allowed = set(trace_seam.READABLE_FIELDS)
            found[name] = (names, allowed)
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(SRC)) if SRC in path.parents else path.name


def _import_of(node: ast.AST) -> str | None:
    """A private OpenTelemetry module or name `node` imports."""
    if isinstance(node, ast.Import):
        private = [alias.name for alias in node.names if _is_private_module(alias.name)]
        return f"import {', '.join(private)}" if private else None
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        opentelemetry = node.module.split(".", maxsplit=1)[0] == "opentelemetry"
        if _is_private_module(node.module) or (
            opentelemetry and any(_is_private(alias.name) for alias in node.names)
        ):
            return f"from {node.module} import ..."
    return None


def _use_of(node: ast.AST) -> str | None:
    """What private OpenTelemetry name `node` uses, outside a class that inherits one."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return _import_of(node)
    if isinstance(node, ast.Attribute):
        own = isinstance(node.value, ast.Name) and node.value.id in OWN
        return f".{node.attr}" if node.attr in PRIVATE and not own else None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ACCESSORS
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value in PRIVATE
        and not (isinstance(node.args[0], ast.Name) and node.args[0].id in OWN)
    ):
        return f"{node.func.id}(..., {node.args[1].value!r})"
    if isinstance(node, ast.Constant) and node.value in FIELDS:
        return repr(node.value)
    return None


def _inherited_uses(cls: ast.ClassDef, names: set[str], allowed: set[str]) -> Iterator[ast.AST]:
    """The names a class with OpenTelemetry bases uses of theirs, on itself or in its body."""
    for node in ast.walk(cls):
        if isinstance(node, ast.Name) and node.id in names - allowed:
            yield node  # a class attribute set (or read) in the class body
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in OWN
            and node.attr in names - allowed
        ):
            yield node


def _python_uses(path: Path, as_module: Path | None = None) -> list[str]:
    """The uses in `path`, whose classes are those of the module at `as_module` (or `path`)."""
    tree = ast.parse(path.read_text())
    inherited = _inherited(as_module or path)
    uses = []
    for node in ast.walk(tree):
        what = _use_of(node)
        if what is not None:
            uses.append(f"{_shown(path)}:{getattr(node, 'lineno', '?')} {what}")
        if isinstance(node, ast.ClassDef) and node.name in inherited:
            for inner in _inherited_uses(node, *inherited[node.name]):
                name = inner.attr if isinstance(inner, ast.Attribute) else getattr(inner, "id", "")
                uses.append(f"{_shown(path)}:{getattr(inner, 'lineno', '?')} {node.name}: {name}")
    return uses


_C_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def _c_uses(path: Path) -> list[str]:
    uses = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for text in _C_STRING.findall(line):
            if text in PRIVATE or _is_private_module(text):
                uses.append(f"{_shown(path)}:{number} {text!r}")
    return uses


def test_no_python_source_reaches_past_the_seam() -> None:
    assert [use for path in _sources((".py",)) for use in _python_uses(path)] == []


def test_no_c_source_reaches_past_the_seam() -> None:
    assert [use for path in _sources((".c", ".h")) for use in _c_uses(path)] == []


def test_the_scan_sees_every_kind_of_use(tmp_path: Path) -> None:
    """Each rule above finds what it is for: in the seam, and in uses planted in a copy."""
    seam_uses = [use for path in SEAM.glob("*.py") for use in _python_uses(path)]
    assert len(seam_uses) >= 30
    original = SRC / "otel" / "spans" / "requestspan_py.py"
    text = original.read_text()
    copy = tmp_path / original.name
    for planted in (
        "import opentelemetry.sdk._configuration",
        "from opentelemetry.metrics._internal import _ProxyMeterProvider",
        "from opentelemetry.trace.propagation import _SPAN_KEY",
        "x = trace_api.get_current_span()._context",
        "y = getattr(BoundedAttributes(), '_dict')",
        "z = type('S', (RequestSpan,), {'_resource': None})",
    ):
        copy.write_text(f"{text}\n{planted}\n")
        assert len(_python_uses(copy, original)) > len(_python_uses(original)), planted
    method = "    def update_name(self"
    for planted in (  # in RequestSpan: ReadableSpan's own, not among the seam's fields
        "    def f(self) -> object:\n        return self._format_events\n\n",
        "    _format_links = None\n\n",
    ):
        copy.write_text(text.replace(method, planted + method))
        assert len(_python_uses(copy, original)) > len(_python_uses(original)), planted
    for planted in (
        'PyObject_GetAttrString(span, "_end_time");',
        'PyObject_GetAttrString(attributes, "_dict");',
        'PyImport_ImportModule("opentelemetry.sdk._configuration");',
    ):
        copy = tmp_path / "planted.c"
        copy.write_text(f"{planted}\n")
        assert _c_uses(copy), planted


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_installed_sdk_is_one_the_seam_was_checked_against() -> None:
    """A newer SDK than `NEWEST` (a pin moved in requirements-dev.txt) fails here, saying what
    to do; users get no warning: the extra's bound (`BELOW`) keeps them within a minor
    release of what was checked, where the seam degrades rather than breaks."""
    installed = metadata.version("opentelemetry-sdk")
    assert metadata.version("opentelemetry-api") == installed
    assert _version(_sdk.FLOOR) <= _version(installed) <= _version(_sdk.NEWEST), (
        f"opentelemetry-sdk {installed} is outside {_sdk.FLOOR}..{_sdk.NEWEST}, the releases "
        "hooktel/otel/_sdk was checked against: read the SDK's changes to each private name "
        "the seam's modules list, run tests/otel and scripts/floor.sh, then move NEWEST "
        "(and BELOW, with the otel extra's bound in pyproject.toml)"
    )


def test_the_versions_are_the_same_everywhere() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    floor_pins = (ROOT / "requirements-floor.txt").read_text()
    middle_pins = (ROOT / "requirements-middle.txt").read_text()
    dev_pins = (ROOT / "requirements-dev.txt").read_text()
    short = ".".join(_sdk.FLOOR.split(".")[:2])
    assert f'"opentelemetry-api>={short},<{_sdk.BELOW}"' in pyproject
    assert f'"opentelemetry-sdk>={short},<{_sdk.BELOW}"' in pyproject
    assert f"opentelemetry-api=={_sdk.FLOOR}\n" in floor_pins
    assert f"opentelemetry-sdk=={_sdk.FLOOR}\n" in floor_pins
    assert f"opentelemetry-api=={_sdk.MIDDLE}\n" in middle_pins
    assert f"opentelemetry-sdk=={_sdk.MIDDLE}\n" in middle_pins
    assert f"opentelemetry-sdk=={_sdk.NEWEST}\n" in dev_pins
    instrumentation = re.search(r'"opentelemetry-instrumentation>=([^"]+)"', pyproject)
    assert instrumentation is not None
    assert f"opentelemetry-instrumentation=={instrumentation.group(1)}\n" in floor_pins
    newest_minor = int(_sdk.NEWEST.split(".")[1])
    assert f"1.{newest_minor + 2}" == _sdk.BELOW, "one minor release past NEWEST, no more"
