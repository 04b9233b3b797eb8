"""The native twins are only tested where they are built and chosen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hooktel
from hooktel._registry import hooks as _registry


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if hooktel.NATIVE:
        return
    skip = pytest.mark.skip(reason="the native core is not active (HOOKTEL_PURE_PYTHON=1)")
    for item in items:
        if item.path.parent.name == "native" and "pure_python" not in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def only_our_instruments() -> Iterator[None]:
    """Each test sees only the instruments it attaches: others (an app module imported
    by another test attaches its own) are set aside for the test and put back after."""
    with _registry._lock:
        others = dict(_registry._attached)
        _registry._attached.clear()
        _registry._rebuild()
    try:
        yield
    finally:
        with _registry._lock:
            _registry._attached.update(others)
            _registry._rebuild()
