"""The project's own checks, as part of the test suite: ruff (lint, format) and mypy strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ("src", "tests", "benchmarks", "examples", "setup.py")


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", *CODE),
        ("ruff", "format", "--check", *CODE),
        ("mypy",),  # strict on src/, as pyproject.toml says
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_check_passes(command: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
