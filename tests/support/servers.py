"""Run a real server on 127.0.0.1 in a subprocess, with the recording instruments attached.

Each server picks its own free port (port 0); the launcher reads the port
from the server's log, then polls until a request succeeds. Nothing sleeps
for a fixed time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.events import EventLog, check_lifecycle, wait_for
from tests.support.recorder import EVENTS_ENV

ROOT = Path(__file__).resolve().parents[2]
ASGI_APP = "tests.support.apps:asgi_app"
WSGI_APP = "tests.support.apps:wsgi_app"
UVICORN = ("-m", "uvicorn", ASGI_APP, "--host", "127.0.0.1", "--port", "0")


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server, and the log line that tells its port."""

    args: tuple[str, ...]
    listening: str  # regex with the port as group 1; "" when the server cannot pick one


SERVERS = {
    # h11 on asyncio, and httptools on uvloop (what `uvicorn[standard]` runs).
    "uvicorn": ServerSpec(
        (*UVICORN, "--http", "h11", "--loop", "asyncio"),
        r"Uvicorn running on http://127\.0\.0\.1:(\d+)",
    ),
    "uvicorn-httptools": ServerSpec(
        (*UVICORN, "--http", "httptools", "--loop", "uvloop"),
        r"Uvicorn running on http://127\.0\.0\.1:(\d+)",
    ),
    "gunicorn": ServerSpec(
        (
            "-m",
            "gunicorn",
            "--bind=127.0.0.1:0",
            "--workers=1",
            "--worker-class=sync",
            "--graceful-timeout=5",
            "--no-control-socket",  # its default path is shared by every gunicorn on the machine
            WSGI_APP,
        ),
        r"Listening at: http://127\.0\.0\.1:(\d+)",
    ),
    "httpserver": ServerSpec(
        ("-m", "tests.support.apps"),
        r"listening on http://127\.0\.0\.1:(\d+)",
    ),
    "hypercorn": ServerSpec(
        ("-m", "hypercorn", "--bind=127.0.0.1:0", ASGI_APP),
        r"Running on http://127\.0\.0\.1:(\d+)",
    ),
    # granian logs "Listening at: ...:0" for port 0, so it gets a free port picked here.
    "granian": ServerSpec(
        (
            "-m",
            "granian",
            "--interface=asgi",
            "--host=127.0.0.1",
            "--port={port}",
            "--workers=1",
            ASGI_APP,
        ),
        "",
    ),
    "wsgiref": ServerSpec(
        ("-m", "tests.support.apps", "wsgiref"),
        r"listening on http://127\.0\.0\.1:(\d+)",
    ),
    "waitress": ServerSpec(
        ("-m", "waitress", "--listen=127.0.0.1:0", WSGI_APP),
        r"Serving on http://127\.0\.0\.1:(\d+)",
    ),
}


class StderrLog:
    """What a server subprocess wrote to stderr (its log file at `stderr_path`)."""

    stderr_path: Path

    def stderr(self, offset: int = 0) -> str:
        """What the server wrote to stderr, from byte `offset` on."""
        with self.stderr_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def stderr_size(self) -> int:
        return self.stderr_path.stat().st_size


@dataclass
class Server(StderrLog):
    """A running server: where it listens, what its instruments recorded, what it logged."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    events: EventLog
    stderr_path: Path

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"


def listening_port(
    spec: ServerSpec, stderr_path: Path, process: subprocess.Popen[bytes]
) -> int | None:
    """The port the server logged it listens on; None until it has."""
    if process.poll() is not None:
        raise AssertionError(f"server exited early:\n{stderr_path.read_text(errors='replace')}")
    match = re.search(spec.listening, stderr_path.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def _free_port() -> int:
    """A port free on 127.0.0.1 now, for a server that cannot pick its own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def running_server(name: str, workdir: Path) -> Iterator[Server]:
    """Start server `name`, yield it once it answers, stop it, then check every event.

    The final check runs after a graceful stop, so every operation that
    started must have ended or failed by then.
    """
    spec = SERVERS[name]
    events_path = workdir / "events.jsonl"
    stderr_path = workdir / "stderr.log"
    env = {
        **os.environ,
        EVENTS_ENV: str(events_path),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    chosen = 0 if spec.listening else _free_port()
    args = [arg.format(port=chosen) for arg in spec.args]
    with (workdir / "stdout.log").open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=stdout, stderr=stderr
        )
    try:
        port = chosen or wait_for(
            lambda: listening_port(spec, stderr_path, process), f"{name} to listen", 15
        )
        server = Server(name, process, port, EventLog(events_path), stderr_path)
        wait_for(lambda: _answers(server.url("/hello")), f"{name} to answer", 15)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    check_lifecycle(EventLog(events_path).read(), complete=True)
