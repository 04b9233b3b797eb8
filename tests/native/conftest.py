"""The native twins are only tested where they are built and chosen."""

from __future__ import annotations

import pytest

import hooktel


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if hooktel.NATIVE:
        return
    skip = pytest.mark.skip(reason="the native core is not active (HOOKTEL_PURE_PYTHON=1)")
    for item in items:
        if item.path.parent.name == "native" and "pure_python" not in item.keywords:
            item.add_marker(skip)
