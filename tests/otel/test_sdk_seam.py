"""The OpenTelemetry internals hooktel uses are all in `hooktel/otel/_sdk.py`, at the floor.

The modules that deal with OpenTelemetry reach private attributes (a leading
underscore) only on their own objects (`self`, `cls`); anything private of the
API or the SDK goes through `_sdk`, which says which versions it was tested
with: the floor pyproject.toml declares and `scripts/floor.sh` installs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hooktel.otel import _sdk

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "hooktel"
OTEL_MODULES = sorted([*(SRC / "otel").glob("*.py"), SRC / "propagation.py"])
OWN = {"self", "cls"}


def _private_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in OWN)
        ):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
        ):
            found.append(f"{path.name}:{node.lineno} {node.func.id}({node.args[1].value!r})")
    return found


def test_private_internals_only_in_the_seam() -> None:
    outside = [
        use for path in OTEL_MODULES if path.name != "_sdk.py" for use in _private_uses(path)
    ]
    assert outside == []


def test_the_seam_is_where_they_are() -> None:
    """The check above looks at what it should: `_sdk` itself is full of them."""
    assert len([u for p in (SRC / "otel" / "_sdk").glob("*.py") for u in _private_uses(p)]) >= 8


def test_the_floor_is_the_same_everywhere() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    floor_pins = (ROOT / "requirements-floor.txt").read_text()
    dev_pins = (ROOT / "requirements-dev.txt").read_text()
    short = ".".join(_sdk.FLOOR.split(".")[:2])
    assert f'"opentelemetry-api>={short}"' in pyproject
    assert f'"opentelemetry-sdk>={short}"' in pyproject
    assert f"opentelemetry-api=={_sdk.FLOOR}\n" in floor_pins
    assert f"opentelemetry-sdk=={_sdk.FLOOR}\n" in floor_pins
    assert f"opentelemetry-sdk=={_sdk.NEWEST}\n" in dev_pins
    instrumentation = re.search(r'"opentelemetry-instrumentation>=([^"]+)"', pyproject)
    assert instrumentation is not None
    assert f"opentelemetry-instrumentation=={instrumentation.group(1)}\n" in floor_pins
