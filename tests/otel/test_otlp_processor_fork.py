"""`OTLPSpanProcessor` under gunicorn workers: each forked worker exports its own spans.

With `--preload` the processor (and its export thread) is made in the master
and the workers are forked from it: each child starts an empty queue and a
thread of its own. Without it, each worker makes its own processor. Either
way every span arrives once, from the worker that served it, and a graceful
stop (SIGTERM) sends what was still queued.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.otel.otlp_receiver import receiver_process
from tests.otel.otlp_servers import otlp_server
from tests.support.events import wait_for

REQUESTS = 120


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_each_worker_exports_its_own_spans_and_a_graceful_stop_loses_none(
    tmp_path: Path, preload: bool
) -> None:
    # Nothing is sent before the stop: spans wait in each worker's queue until it exits.
    env = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048"}
    args = ("--preload",) if preload else ()
    with (
        receiver_process() as receiver,
        otlp_server("gunicorn", tmp_path, receiver.endpoint, env, args) as app,
    ):
        served_by = Counter(int(app.get("/work").text) for _ in range(REQUESTS))
        # A worker is picked by the kernel per connection: go on until both served some.
        wait_for(
            lambda: len(served_by.update([int(app.get("/work").text)]) or served_by) == 2,
            "both workers to serve a request",
            30,
        )
        assert receiver.count() == 0
        app.stop()
        spans = receiver.spans()
    total = sum(served_by.values())
    assert Counter(s["span_id"] for s in spans).most_common(1)[0][1] == 1, "a span sent twice"
    work = [s for s in spans if s["name"] == "work"]
    assert Counter(s["attributes"]["app.pid"] for s in work) == served_by
    assert len([s for s in spans if s["name"] == "GET /work"]) == total
