"""A hook that raises: isolated, reported on one rate-limited stderr line; inject merging."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hooktel
from hooktel import Instrument, InstrumentKind
from hooktel._registry import errors as _errors
from hooktel._registry.errors import RateLimitedLog

from .helpers import Recorder

# Logging is left unconfigured here, so the lines go to stderr (see `unconfigured_logging`);
# what a configured logging gets is tested at the end.
pytestmark = pytest.mark.usefixtures("unconfigured_logging")

LINE = re.compile(r"\[hooktel\] Error in (on_operation_\w+) \((.+) v(.+)\): (\w+): (.*)")


class HookFailure(Exception):
    pass


def raising(message: str = "boom") -> Any:
    def hook(*args: Any) -> Any:
        raise HookFailure(message)

    return hook


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


# --- isolation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "hook", ["on_operation_start", "on_operation_inject", "on_operation_end", "on_operation_error"]
)
def test_a_raising_hook_never_stops_the_others(
    hook: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log: list[Any] = []
    first = Recorder("first", log=log, inject=lambda op_id: {"x-first": "1"})
    last = Recorder("last", log=log, inject=lambda op_id: {"x-last": "1"})
    first.attach()
    hooktel.attach(Instrument(InstrumentKind.HTTP, "broken", "1.2.3", **{hook: raising()}))
    last.attach()
    hooks = hooktel.native_hooks()
    assert hooks is not None

    hooks.notify_start(1, {"operation.id": 1})
    assert hooks.notify_inject(1) == {"x-first": "1", "x-last": "1"}
    hooks.notify_end(1, {"operation.id": 1})
    hooks.notify_error(2, {"operation.id": 2})

    assert [(e[0], e[1]) for e in log] == [
        (event, name) for event in ("start", "inject", "end", "error") for name in ("first", "last")
    ]
    assert error_lines(capsys) == [f"[hooktel] Error in {hook} (broken v1.2.3): HookFailure: boom"]


def test_line_format_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    hooktel.attach(
        Instrument("http", "my-instrument", "0.9.1", on_operation_start=raising("it broke"))
    )
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_start(1, {})
    assert capsys.readouterr().err == (
        "[hooktel] Error in on_operation_start (my-instrument v0.9.1): HookFailure: it broke\n"
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad value"), "ValueError: bad value"),
        (KeyError("k"), "KeyError: 'k'"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
        (RuntimeError(), "RuntimeError: "),
    ],
)
def test_line_names_the_exception_type(
    exc: Exception, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def hook(op_id: int, attrs: Any) -> None:
        raise exc

    hooktel.attach(Instrument("http", "n", "1", on_operation_end=hook))
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_end(1, {})
    assert error_lines(capsys) == [f"[hooktel] Error in on_operation_end (n v1): {expected}"]


def test_multiline_message_stays_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    hooktel.attach(Instrument("http", "n", "1", on_operation_start=raising("a\nb\r\nc")))
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_start(1, {})
    [line] = error_lines(capsys)
    match = LINE.fullmatch(line)
    assert match is not None
    assert "a" in match[5] and "c" in match[5]


def test_exception_that_cannot_be_printed_is_still_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    def hook(op_id: int, attrs: Any) -> None:
        raise Unprintable

    after = Recorder("after")
    hooktel.attach(Instrument("http", "n", "1", on_operation_start=hook))
    after.attach()
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_start(1, {})  # must not raise
    assert [e[0] for e in after.log] == ["start"]
    [line] = error_lines(capsys)
    assert line.startswith("[hooktel] Error in on_operation_start (n v1): Unprintable: ")


def test_raising_hook_during_a_request_lifecycle(capsys: pytest.CaptureFixture[str]) -> None:
    """Through begin_http: every event is still delivered exactly once to the others."""
    from .helpers import start

    hooktel.attach(
        Instrument(
            "http",
            "broken",
            "1",
            on_operation_start=raising(),
            on_operation_inject=raising(),
            on_operation_end=raising(),
        )
    )
    rec = Recorder("ok", inject=lambda op_id: {"x-ok": "1"})
    rec.attach()
    op = start()
    assert op.inject() == {"x-ok": "1"}
    op.end()
    assert [e[0] for e in rec.log] == ["start", "inject", "end"]
    lines = error_lines(capsys)
    assert [LINE.fullmatch(line)[1] for line in lines] == [  # type: ignore[index]
        "on_operation_start",
        "on_operation_inject",
        "on_operation_end",
    ]


# --- rate limiting -------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def suppressed_count(line: str) -> int:
    match = re.fullmatch(r"\[hooktel\] (\d+) .*suppressed.*", line)
    assert match is not None, line
    return int(match[1])


def test_rate_limit_ten_lines_per_second_then_a_count(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    log = RateLimitedLog(clock=clock)
    for i in range(25):
        clock.now += 0.01  # 25 lines within a quarter second
        log.write(f"line {i}")
    assert error_lines(capsys) == [f"line {i}" for i in range(10)]

    clock.now += 0.7  # still inside the first second: nothing new, nothing reported
    log.write("late")
    assert error_lines(capsys) == []

    clock.now += 0.2  # next second: first the count of what was suppressed, then the line
    log.write("next")
    lines = error_lines(capsys)
    assert len(lines) == 2
    assert suppressed_count(lines[0]) == 16
    assert lines[0].startswith("[hooktel] ")
    assert lines[1] == "next"


def test_rate_limit_window_boundaries(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock(0.0)
    log = RateLimitedLog(clock=clock)
    for _ in range(10):
        log.write("a")
    clock.now = 0.999
    log.write("dropped")
    clock.now = 1.0
    for _ in range(10):
        log.write("b")
    clock.now = 1.5
    log.write("dropped")
    log.write("dropped")
    lines = error_lines(capsys)
    assert lines[:10] == ["a"] * 10
    assert suppressed_count(lines[10]) == 1
    assert lines[11:] == ["b"] * 10
    log.flush()
    [line] = error_lines(capsys)
    assert suppressed_count(line) == 2


def test_no_count_line_when_nothing_was_suppressed(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    log = RateLimitedLog(clock=clock)
    for _second in range(3):
        for _ in range(10):
            log.write("x")
        clock.now += 1.0
    log.flush()
    assert error_lines(capsys) == ["x"] * 30


def test_flush_reports_once(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    log = RateLimitedLog(clock=clock)
    for _ in range(13):
        log.write("x")
    log.flush()
    log.flush()
    lines = error_lines(capsys)
    assert lines[:10] == ["x"] * 10
    assert len(lines) == 11
    assert suppressed_count(lines[10]) == 3


def test_hook_errors_go_through_the_process_wide_limiter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hooktel.attach(Instrument("http", "n", "1", on_operation_start=raising()))
    hooks = hooktel.native_hooks()
    assert hooks is not None
    for op_id in range(1, 51):
        hooks.notify_start(op_id, {})
    assert len(error_lines(capsys)) == 10


def test_end_to_end_100_errors_in_a_subprocess(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import hooktel

        def broken(op_id, attrs):
            raise ValueError(f"op {op_id}")

        hooktel.attach(hooktel.Instrument("http", "broken", "1.0", on_operation_start=broken))
        hooks = hooktel.native_hooks()
        for _ in range(100):
            hooks.notify_start(hooks.generate_id(), {})
        print("still running")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    assert result.stdout == "still running\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 11, result.stderr
    for line in lines[:10]:
        match = LINE.fullmatch(line)
        assert match is not None, line
        assert match.groups()[:4] == ("on_operation_start", "broken", "1.0", "ValueError")
    assert suppressed_count(lines[10]) == 90  # reported at exit at the latest


# --- inject merging ------------------------------------------------------------------


def injecting(name: str, returned: Any) -> Instrument:
    return Instrument("http", name, "1", on_operation_inject=lambda op_id: returned)


def inject_now() -> dict[str, str]:
    hooks = hooktel.native_hooks()
    assert hooks is not None
    return hooks.notify_inject(1)


def test_inject_first_instrument_to_set_a_header_wins(capsys: pytest.CaptureFixture[str]) -> None:
    hooktel.attach(injecting("a", {"X-Shared": "from-a", "x-a": "1"}))
    hooktel.attach(injecting("b", {"x-shared": "from-b", "x-b": "2"}))
    hooktel.attach(injecting("c", None))  # None: nothing to add, nothing logged
    hooktel.attach(injecting("d", {}))
    assert inject_now() == {"x-shared": "from-a", "x-a": "1", "x-b": "2"}
    assert error_lines(capsys) == []


def test_inject_receives_the_operation_id() -> None:
    seen: list[int] = []

    def hook(op_id: int) -> Mapping[str, str]:
        seen.append(op_id)
        return {"x-op": str(op_id)}

    hooktel.attach(Instrument("http", "n", "1", on_operation_inject=hook))
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.notify_inject(42) == {"x-op": "42"}
    assert seen == [42]


@pytest.mark.parametrize("returned", [["x-a", "1"], "x-a: 1", 7, (("x-a", "1"),)])
def test_inject_non_mapping_is_dropped_and_logged(
    returned: object, capsys: pytest.CaptureFixture[str]
) -> None:
    hooktel.attach(injecting("bad", returned))
    hooktel.attach(injecting("good", {"x-good": "1"}))
    assert inject_now() == {"x-good": "1"}
    [line] = error_lines(capsys)
    assert line.startswith("[hooktel] Error in on_operation_inject (bad v1): ")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-int", 1),
        ("x-bytes", b"1"),
        ("x-none", None),
        (b"x-bytes-name", "1"),
        (1, "1"),
        ("x-cr", "a\rb"),
        ("x-lf", "a\nb"),
        ("x-crlf", "a\r\nInjected: yes"),
        ("x-nul", "a\x00b"),
        ("x-bad\r\nname", "1"),
        ("x bad", "1"),
        ("", "1"),
        ("x-huge", "v" * (8 * 1024 + 1)),
    ],
)
def test_inject_invalid_header_is_dropped_and_logged(
    name: object, value: object, capsys: pytest.CaptureFixture[str]
) -> None:
    hooktel.attach(injecting("mixed", {"x-before": "1", name: value, "x-after": "2"}))
    hooktel.attach(injecting("other", {"x-other": "3"}))
    assert inject_now() == {"x-before": "1", "x-after": "2", "x-other": "3"}
    [line] = error_lines(capsys)
    assert line.startswith("[hooktel] Error in on_operation_inject (mixed v1): ")


def test_inject_value_of_exactly_8_kib_is_kept() -> None:
    hooktel.attach(injecting("n", {"x-big": "v" * 8 * 1024}))
    assert inject_now() == {"x-big": "v" * 8 * 1024}


def test_inject_at_most_20_headers(capsys: pytest.CaptureFixture[str]) -> None:
    hooktel.attach(injecting("a", {f"x-a{i}": str(i) for i in range(15)}))
    hooktel.attach(injecting("b", {f"x-b{i}": str(i) for i in range(15)}))
    headers = inject_now()
    assert len(headers) == 20
    assert list(headers) == [f"x-a{i}" for i in range(15)] + [f"x-b{i}" for i in range(5)]


def test_inject_one_instrument_returning_30_headers() -> None:
    hooktel.attach(injecting("a", {f"x-{i}": str(i) for i in range(30)}))
    assert list(inject_now()) == [f"x-{i}" for i in range(20)]


def test_inject_full_list_still_lets_earlier_names_win() -> None:
    hooktel.attach(injecting("a", {f"x-{i}": "a" for i in range(20)}))
    hooktel.attach(injecting("b", {"x-0": "b", "x-extra": "b"}))
    headers = inject_now()
    assert len(headers) == 20 and headers["x-0"] == "a" and "x-extra" not in headers


def test_inject_raising_hook_is_logged_and_others_contribute(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hooktel.attach(Instrument("http", "broken", "2", on_operation_inject=raising("no")))
    hooktel.attach(injecting("good", {"x-good": "1"}))
    assert inject_now() == {"x-good": "1"}
    assert error_lines(capsys) == [
        "[hooktel] Error in on_operation_inject (broken v2): HookFailure: no"
    ]


def test_inject_returned_mapping_is_copied() -> None:
    mine = {"x-a": "1"}
    hooktel.attach(injecting("a", mine))
    headers = inject_now()
    headers["x-b"] = "2"
    assert mine == {"x-a": "1"}
    assert inject_now() == {"x-a": "1"}


# Headers that frame or route a message (RFC 9110 7.2, 7.6.1; RFC 9112 6; RFC 9113 8.2.2),
# listed here rather than imported, so a name taken off the list fails a test.
FRAMING = (
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "http2-settings",
    "host",
)


@pytest.mark.parametrize("name", FRAMING)
def test_inject_framing_header_is_dropped_and_logged(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hooktel.attach(injecting("framer", {"x-before": "1", name: "0", "x-after": "2"}))
    hooktel.attach(injecting("other", {name.upper(): "0", "x-other": "3"}))
    assert inject_now() == {"x-before": "1", "x-after": "2", "x-other": "3"}
    lines = error_lines(capsys)
    assert [line.split(":")[0] for line in lines] == [
        "[hooktel] Error in on_operation_inject (framer v1)",
        "[hooktel] Error in on_operation_inject (other v1)",
    ]
    assert f"{name!r}" in lines[0] and "frame or route the message" in lines[0]


@given(
    name=st.sampled_from(FRAMING).flatmap(
        lambda n: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in n)).map("".join)
    ),
    value=st.sampled_from(["0", "999", "chunked", "close", "h2c", "example.com", ""]),
)
def test_inject_framing_header_in_any_case_is_dropped(name: str, value: str) -> None:
    with hooktel.attach(injecting("framer", {name: value, "x-kept": "1"})):
        assert inject_now() == {"x-kept": "1"}


def test_inject_framing_and_invalid_headers_are_told_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hooktel.attach(injecting("mixed", {"Content-Length": "5", "x-bad": "a\nb", "x-ok": "1"}))
    assert inject_now() == {"x-ok": "1"}
    [line] = error_lines(capsys)
    assert "dropped invalid header(s) ['x-bad']" in line
    assert "dropped header(s) ['Content-Length']: headers that frame or route" in line


# --- through logging -----------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_with_logging_configured_lines_go_to_the_hooktel_logger(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = Records()
    logger = logging.Logger("hooktel")
    logger.addHandler(handler)
    monkeypatch.setattr(_errors, "logger", logger)
    log = RateLimitedLog(limit=2, clock=lambda: 0.0)
    for i in range(5):
        log.write(f"line {i}")
    log.flush()
    assert [(r.name, r.levelno, r.getMessage()) for r in handler.records] == [
        ("hooktel", logging.ERROR, "line 0"),
        ("hooktel", logging.ERROR, "line 1"),
        ("hooktel", logging.WARNING, "[hooktel] 3 more hook error(s) suppressed (rate limit)"),
    ]
    assert capsys.readouterr().err == ""


def test_a_silenced_hooktel_logger_writes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.Logger("hooktel", level=logging.CRITICAL)
    monkeypatch.setattr(_errors, "logger", logger)
    hooktel.attach(Instrument("http", "n", "1", on_operation_start=raising()))
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_start(1, {})
    assert capsys.readouterr().err == ""


def test_a_process_that_configured_logging_gets_its_format(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s | %(message)s")
        import hooktel
        def broken(op_id, attrs):
            raise KeyError("http.route")
        hooktel.attach(hooktel.Instrument("http", "access-log", "1.0", on_operation_end=broken))
        hooktel.native_hooks().notify_end(1, {})
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == [
        "ERROR hooktel | [hooktel] Error in on_operation_end (access-log v1.0): "
        "KeyError: 'http.route'"
    ]
    assert result.stderr == ""
