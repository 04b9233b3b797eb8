"""Options hooktel cannot honour are never silently ignored: one warning names each.

`instrument()` in this process, with the SDK's in-memory exporter; the
warnings go to the `hooktel` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from hooktel.otel import HttpInstrumentation
from hooktel.otel._config import CONTRIB_ALIASES, ENV_CAPTURE_REQUEST, IGNORED, Config


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING, logger="hooktel")
    yield caplog


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hooktel"]


@pytest.mark.parametrize("option", sorted(IGNORED))
def test_each_ignored_contrib_option_gets_one_warning_naming_it(
    option: str, warnings: pytest.LogCaptureFixture
) -> None:
    instrumentation = HttpInstrumentation()
    instrumentation.instrument(tracer_provider=TracerProvider(), **{option: object()})
    try:
        [message] = _messages(warnings)
        assert f"option {option} ignored: " in message
    finally:
        instrumentation.uninstrument()


def test_an_unknown_option_is_named(warnings: pytest.LogCaptureFixture) -> None:
    Config.from_kwargs({"capture_request_header": ["x-a"]})  # a typo
    assert _messages(warnings) == ["hooktel.otel: unknown option capture_request_header ignored"]


@pytest.mark.parametrize("value", [["receive"], ["send", "receive"], [], None])
def test_exclude_spans_is_what_hooktel_does_anyway(
    value: Any, warnings: pytest.LogCaptureFixture
) -> None:
    Config.from_kwargs({"exclude_spans": value})
    assert _messages(warnings) == []


def test_exclude_spans_unknown_values_are_named(warnings: pytest.LogCaptureFixture) -> None:
    Config.from_kwargs({"exclude_spans": ["send", "http"]})
    assert _messages(warnings) == [
        "hooktel.otel: exclude_spans ['http'] ignored: only 'receive' and 'send' exist"
    ]


@pytest.mark.parametrize("contrib", sorted(CONTRIB_ALIASES))
def test_contrib_names_translate_and_clash_with_hooktel_names(contrib: str) -> None:
    own = CONTRIB_ALIASES[contrib]
    config = Config.from_kwargs({contrib: ["x-a"]})
    if own == "sanitize_fields":
        assert config.sanitize is not None and config.sanitize.search("X-A")
    else:
        assert getattr(config, own) == ("x-a",)
        with pytest.raises(TypeError, match=f"give {own} or {contrib}, not both"):
            Config.from_kwargs({contrib: ["x-a"], own: ["x-b"]})


@pytest.mark.parametrize("entry", ["x-.*", "x-(a|b)", "^x-a$", "x-[a-z]+", "x-a?", "bad name"])
@pytest.mark.parametrize("source", ["option", "environment"])
def test_capture_patterns_are_named_and_exact_names_kept(
    entry: str, source: str, warnings: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "option":
        config = Config.from_kwargs({"capture_request_headers": ["x-kept", entry, "x.dotted"]})
        where = "capture_request_headers"
    else:
        monkeypatch.setenv(ENV_CAPTURE_REQUEST, f"x-kept,{entry},x.dotted")
        config = Config.from_kwargs({})
        where = ENV_CAPTURE_REQUEST
    assert config.capture_request_headers == ("x-kept", "x.dotted")
    assert _messages(warnings) == [
        f"hooktel.otel: header capture entry {entry!r} ({where}) ignored: hooktel captures "
        "exact header names, not patterns"
    ]
