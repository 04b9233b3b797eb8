"""Log correlation: `LoggingInstrumentation` stamps what contrib's does, and the structlog
processor and loguru patcher stamp OpenTelemetry's non-OTLP field names."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from hooktel.otel import LoggingInstrumentation
from hooktel.otel.logs import DEFAULT_LOGGING_FORMAT, loguru_patcher, structlog_processor

FIELDS = ("otelSpanID", "otelTraceID", "otelTraceSampled", "otelServiceName")
BIN = Path(sys.executable).parent


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider(resource=Resource.create({"service.name": "shop"}))


@pytest.fixture
def stamped(provider: TracerProvider) -> Iterator[LoggingInstrumentation]:
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider, inject_trace_context=True)
    yield instrumentation
    instrumentation.uninstrument()


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: record.__dict__.get(name, "<none>") for name in FIELDS}


def make_record() -> logging.LogRecord:
    return logging.getLogger("test").makeRecord("test", logging.INFO, "f.py", 1, "m", (), None)


def flags(span: trace.Span) -> str:
    """The W3C trace flags, as in `traceparent` (sampled, and random trace id where the
    SDK sets that flag)."""
    return format(span.get_span_context().trace_flags, "02x")


def ids(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def test_a_record_in_a_span_carries_its_ids(stamped: Any, provider: TracerProvider) -> None:
    with provider.get_tracer("t").start_as_current_span("work") as span:
        record = make_record()
    trace_id, span_id = ids(span)
    assert fields(record) == {
        "otelSpanID": span_id,
        "otelTraceID": trace_id,
        "otelTraceSampled": True,
        "otelServiceName": "shop",
    }


def test_outside_a_span_contribs_defaults(stamped: Any) -> None:
    assert fields(make_record()) == {
        "otelSpanID": "0",
        "otelTraceID": "0",
        "otelTraceSampled": False,
        "otelServiceName": "shop",
    }


def test_a_format_written_for_contrib_formats(stamped: Any, provider: TracerProvider) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(DEFAULT_LOGGING_FORMAT))
    logger = logging.getLogger("formatted")
    logger.addHandler(handler)
    try:
        with provider.get_tracer("t").start_as_current_span("work") as span:
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = stream.getvalue().splitlines()
    trace_id, span_id = ids(span)
    assert f"[trace_id={trace_id} span_id={span_id} resource.service.name=shop " in inside
    assert "trace_sampled=True] - inside" in inside
    assert "[trace_id=0 span_id=0 resource.service.name=shop trace_sampled=False]" in outside


CONTEXTS = {
    "sampled": SpanContext(0xABC, 0xDEF, False, TraceFlags(TraceFlags.SAMPLED)),
    "not sampled": SpanContext(0xABC, 0x123, False, TraceFlags(TraceFlags.DEFAULT)),
    "remote": SpanContext(0x1, 0x2, True, TraceFlags(TraceFlags.SAMPLED)),
    "invalid": trace.INVALID_SPAN_CONTEXT,
}


@pytest.mark.parametrize("where", [None, *CONTEXTS], ids=str)
def test_the_same_fields_as_contribs(where: str | None, provider: TracerProvider) -> None:
    contrib = pytest.importorskip("opentelemetry.instrumentation.logging")
    span = NonRecordingSpan(CONTEXTS[where]) if where else None

    def record_with(instrumentor: Any, **options: Any) -> dict[str, Any]:
        instrumentor.instrument(tracer_provider=provider, inject_trace_context=True, **options)
        try:
            if span is None:
                return fields(make_record())
            with trace.use_span(span):
                return fields(make_record())
        finally:
            instrumentor.uninstrument()

    theirs = record_with(contrib.LoggingInstrumentor(), enable_log_auto_instrumentation=False)
    assert record_with(LoggingInstrumentation()) == theirs


def test_nothing_is_stamped_unless_asked(provider: TracerProvider) -> None:
    factory = logging.getLogRecordFactory()
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider)  # contrib's default: opt-in
    try:
        assert logging.getLogRecordFactory() is factory
        assert "otelTraceID" not in make_record().__dict__
    finally:
        instrumentation.uninstrument()


def test_uninstrument_puts_the_factory_back(provider: TracerProvider) -> None:
    factory = logging.getLogRecordFactory()
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider, inject_trace_context=True)
    assert logging.getLogRecordFactory() is not factory
    instrumentation.uninstrument()
    assert logging.getLogRecordFactory() is factory
    assert "otelTraceID" not in make_record().__dict__


def test_a_factory_wrapped_since_stops_stamping(provider: TracerProvider) -> None:
    original = logging.getLogRecordFactory()
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider, inject_trace_context=True)
    ours = logging.getLogRecordFactory()

    def wrapper(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return ours(*args, **kwargs)

    logging.setLogRecordFactory(wrapper)
    try:
        instrumentation.uninstrument()
        assert logging.getLogRecordFactory() is wrapper  # not taken out from under it
        assert "otelTraceID" not in make_record().__dict__
    finally:
        logging.setLogRecordFactory(original)


def test_a_factory_installed_before_is_wrapped(provider: TracerProvider) -> None:
    original = logging.getLogRecordFactory()

    def custom(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        record.custom = "kept"
        return record

    logging.setLogRecordFactory(custom)
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider, inject_trace_context=True)
    try:
        with provider.get_tracer("t").start_as_current_span("work") as span:
            record = make_record()
    finally:
        instrumentation.uninstrument()
        logging.setLogRecordFactory(original)
    assert record.custom == "kept"
    assert (record.otelTraceID, record.otelSpanID) == ids(span)


def test_the_log_hook_runs_in_a_span_and_cannot_break_a_record(provider: TracerProvider) -> None:
    seen: list[tuple[trace.Span, logging.LogRecord]] = []

    def hook(span: trace.Span, record: logging.LogRecord) -> None:
        seen.append((span, record))
        raise RuntimeError("a broken hook")

    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider, inject_trace_context=True, log_hook=hook)
    try:
        outside = make_record()
        with provider.get_tracer("t").start_as_current_span("work") as span:
            inside = make_record()
    finally:
        instrumentation.uninstrument()
    assert seen == [(span, inside)]
    assert outside.otelTraceID == "0" and (inside.otelTraceID, inside.otelSpanID) == ids(span)


def test_an_unsampled_span_is_stamped_as_not_sampled() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    instrumentation = LoggingInstrumentation()
    instrumentation.instrument(tracer_provider=provider, inject_trace_context=True)
    try:
        with provider.get_tracer("t").start_as_current_span("work") as span:
            record = make_record()
    finally:
        instrumentation.uninstrument()
    assert (record.otelTraceID, record.otelSpanID) == ids(span)
    assert (
        record.otelTraceSampled is False
        and record.otelServiceName == provider.resource.attributes["service.name"]
    )


# ---------------------------------------------------------------- the switches, in a process


SCRIPT = """
import logging
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
{setup}
with trace.get_tracer("t").start_as_current_span("work") as span:
    logging.getLogger("app").info("inside")
    ctx = span.get_span_context()
    print(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
logging.getLogger("app").info("outside")
"""
PROVIDER = (
    "from opentelemetry.sdk.resources import Resource\n"
    "trace.set_tracer_provider(TracerProvider(resource=Resource({'service.name': 'shop'})))\n"
)


def run(setup: str, tmp_path: Path, command: tuple[str, ...] = (), **env: str) -> tuple[str, str]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(setup=setup))
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [*command, sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
        check=True,
    )
    return result.stdout.strip(), result.stderr


def test_set_logging_format_configures_contribs_format(tmp_path: Path) -> None:
    setup = (
        PROVIDER + "from hooktel.otel import LoggingInstrumentation\n"
        "LoggingInstrumentation().instrument(set_logging_format=True)\n"
    )
    ids_, err = run(setup, tmp_path)
    trace_id, span_id = ids_.split()
    inside, outside = err.splitlines()
    assert inside.split(" INFO [app] [script.py:")[1].split("] ", 1)[1] == (
        f"[trace_id={trace_id} span_id={span_id} resource.service.name=shop "
        "trace_sampled=True] - inside"
    )
    assert outside.endswith(
        "[trace_id=0 span_id=0 resource.service.name=shop trace_sampled=False] - outside"
    )


def test_the_environment_switches_it_on_with_format_and_level(tmp_path: Path) -> None:
    setup = PROVIDER + "from hooktel.otel import LoggingInstrumentation\n"
    setup += "LoggingInstrumentation().instrument()\n"
    env = {
        "OTEL_PYTHON_LOG_CORRELATION": "true",
        "OTEL_PYTHON_LOG_FORMAT": "%(levelname)s %(otelTraceID)s %(otelSpanID)s %(message)s",
        "OTEL_PYTHON_LOG_LEVEL": "warning",
    }
    _ids, err = run(setup, tmp_path, **env)
    assert err == ""  # warning: the two info lines are below the level set
    env["OTEL_PYTHON_LOG_LEVEL"] = "info"
    ids_, err = run(setup, tmp_path, **env)
    assert err.splitlines() == [f"INFO {ids_} inside", "INFO 0 0 outside"]


@pytest.mark.parametrize("correlation", ["true", None])
def test_under_opentelemetry_instrument(correlation: str | None, tmp_path: Path) -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        # contrib's own logging instrumentation, where installed, is not the one under test
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging",
        "OTEL_SERVICE_NAME": "shop",
    }
    if correlation:
        env["OTEL_PYTHON_LOG_CORRELATION"] = correlation
    command = (str(BIN / "opentelemetry-instrument"),)
    ids_, err = run("", tmp_path, command, **env)
    lines = [line for line in err.splitlines() if "[app]" in line]
    if correlation is None:
        assert lines == []  # no format set, and nothing stamped: basicConfig's absent
        return
    trace_id, span_id = ids_.split()
    assert lines[0].endswith(
        f"[trace_id={trace_id} span_id={span_id} resource.service.name=shop "
        "trace_sampled=True] - inside"
    )


# ---------------------------------------------------------------- structlog and loguru


def test_structlog_processor() -> None:
    structlog = pytest.importorskip("structlog")
    out = io.StringIO()
    structlog.configure(
        processors=[structlog_processor, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        provider = TracerProvider()
        log = structlog.get_logger()
        with provider.get_tracer("t").start_as_current_span("work") as span:
            log.info("inside")
        log.info("outside")
    finally:
        structlog.reset_defaults()
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    trace_id, span_id = ids(span)
    assert inside == {
        "event": "inside",
        "trace_id": trace_id,
        "span_id": span_id,
        "trace_flags": flags(span),
    }
    assert outside == {"event": "outside"}


def test_loguru_patcher() -> None:
    loguru = pytest.importorskip("loguru")
    logger = loguru.logger
    lines: list[str] = []
    logger.remove()
    logger.configure(
        patcher=loguru_patcher,
        extra={"trace_id": "0", "span_id": "0", "trace_flags": "00"},
    )
    sink = logger.add(
        lambda message: lines.append(str(message).strip()),
        format="{extra[trace_id]} {extra[span_id]} {extra[trace_flags]} {message}",
    )
    try:
        provider = TracerProvider()
        with provider.get_tracer("t").start_as_current_span("work") as span:
            logger.info("inside")
        logger.info("outside")
    finally:
        logger.remove(sink)
        logger.configure(patcher=None, extra={})
    trace_id, span_id = ids(span)
    assert lines == [f"{trace_id} {span_id} {flags(span)} inside", "0 0 00 outside"]


def test_the_entry_point() -> None:
    [entry] = [
        e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "hooktel_logging"
    ]
    assert entry.load() is LoggingInstrumentation
