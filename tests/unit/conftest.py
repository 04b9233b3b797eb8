"""Shared fixtures for the unit tests: a clean registry and a fresh error log per test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import hooktel
from hooktel._registry import errors as _errors

from .helpers import Recorder


def _detach_all() -> None:
    for info in hooktel.instruments():
        hooktel.detach(info.id)


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    """Every test starts and ends with nothing attached."""
    _detach_all()
    yield
    _detach_all()


@pytest.fixture(autouse=True)
def fresh_error_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new rate limiter per test, so one test's hook errors never silence another's."""
    monkeypatch.setattr(_errors, "hook_errors", _errors.RateLimitedLog())


@pytest.fixture
def recorder() -> Recorder:
    """An attached HTTP instrument that records what it is told."""
    rec = Recorder()
    rec.attach()
    return rec


@pytest.fixture
def unconfigured_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging as an app that never configured it has it: no handler anywhere.

    pytest puts its own capturing handlers on the loggers while a test runs;
    with a `hooktel` logger outside the logging tree, hook errors take the
    path an unconfigured process takes, to stderr.
    """
    monkeypatch.setattr(_errors, "logger", logging.Logger("hooktel"))
