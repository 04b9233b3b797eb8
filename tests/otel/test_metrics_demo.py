"""The README's demo shows the metrics: the duration histogram per route, after the trace."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.servers import ROOT


def test_the_demo_prints_the_duration_per_route_after_the_trace() -> None:
    result = subprocess.run(
        [sys.executable, "examples/two_services.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.splitlines()
    header = lines.index("# metrics: http.server.request.duration per route, in ms")
    assert not any(line.startswith("# trace ") for line in lines[header:]), "metrics before trace"
    rows = {
        (match.group(1), match.group(2)): (int(match.group(3)), int(match.group(4)))
        for line in lines[header + 2 :]
        if (match := re.match(r"#   (\S+) +(.+?) +(\d{3}) +(\d+) +\d+\.\d\d +\d+\.\d\d  <=", line))
    }
    assert rows == {  # each service's route, both client calls
        ("service-a", "GET /items/{item_id}"): (200, 2),
        ("service-b", "GET /answers/{question}"): (200, 2),
    }
