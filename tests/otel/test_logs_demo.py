"""The demo prints a log line per request, stamped with that request's SERVER span, and
service A's runtime metrics once."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.servers import ROOT

RUNTIME = {
    "process.cpu.time",
    "process.memory.usage",
    "process.thread.count",
    "process.unix.file_descriptor.count",
    "cpython.gc.collections",
    "cpython.gc.collected_objects",
    "cpython.gc.uncollectable_objects",
    "cpython.gc.pause.time",
    "asyncio.eventloop.delay.max",
}


def test_the_demo_prints_correlated_log_lines_and_the_runtime_metrics() -> None:
    result = subprocess.run(
        [sys.executable, "examples/two_services.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.splitlines()
    servers = {
        (service, match.group(1), match.group(2))
        for service in ("service-a", "service-b")
        for line in lines[lines.index(f"## spans of service.name={service}") :]
        if (match := re.match(r"trace=(\w{32}) span=(\w{16}) parent=\S+ +SERVER ", line))
    }
    logs = lines.index("## log lines, each stamped with its request's trace and SERVER span")
    runtime = lines.index("## runtime metrics of service-a, as it shut down")
    stamped = [
        re.match(r"#   (\S+) trace=(\w+) span=(\w+) ", line) for line in lines[logs + 1 : runtime]
    ]
    assert all(stamped) and len(stamped) == 4  # two requests, each through both services
    assert {m.groups() for m in stamped if m} <= servers
    assert len({m.group(2) for m in stamped if m}) == 2  # two traces
    reported = set()
    for line in lines[runtime + 1 :]:
        if not line.startswith("#   service-a "):
            break
        reported.add(line.split()[2])
    assert reported == RUNTIME
    assert lines.count("## runtime metrics of service-a, as it shut down") == 1
