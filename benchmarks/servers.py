"""The servers under load, and starting/stopping one server process safely.

Each `Server` names an app of `apps.APPS` and the command line that serves
it on 127.0.0.1:PORT. The variant is passed in the environment, so the same
command serves every variant. uvicorn runs twice: with h11 and asyncio, and
with httptools and uvloop (`uvicorn[standard]`, what most deployments run).

On a machine with two cores or more, the server is pinned to core 0 and
everything else the harness starts (wrk, the receiver, the stand-in agent)
to core 1 (`taskset`): unpinned, two runs of the same bare server differ by
10-15% on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .apps import APP_ENV, APPS, VARIANT_ENV, Interface, Kind

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Server:
    name: str
    app: str  # key of apps.APPS
    command: Callable[[int], list[str]]
    description: str

    @property
    def interface(self) -> Interface:
        return APPS[self.app].interface

    @property
    def kind(self) -> Kind:
        return APPS[self.app].kind


SERVER_CORE, CLIENT_CORE = "0", "1"


def pinned(command: list[str], core: str) -> list[str]:
    """`command` under `taskset -c core`, where there are two cores and taskset to pin them."""
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return command
    return [taskset, "-c", core, *command]


def _uvicorn_with(http: str, loop: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks.apps:build",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            f"--http={http}",
            f"--loop={loop}",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    return command


_uvicorn = _uvicorn_with("h11", "asyncio")
_uvicorn_standard = _uvicorn_with("httptools", "uvloop")


def _gunicorn(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--bind",
        f"{HOST}:{port}",
        "--log-level",
        "warning",
        "benchmarks.apps:build()",
    ]


def _httpserver(port: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.apps", "--port", str(port)]


SERVERS: dict[str, Server] = {
    s.name: s
    for s in (
        Server("uvicorn-asgi", "raw-asgi", _uvicorn, "uvicorn h11, 1 worker, raw ASGI hello app"),
        Server("uvicorn-starlette", "starlette", _uvicorn, "uvicorn h11, 1 worker, Starlette app"),
        Server(
            "uvicorn-std-asgi",
            "raw-asgi",
            _uvicorn_standard,
            "uvicorn httptools+uvloop, 1 worker, raw ASGI hello app",
        ),
        Server(
            "uvicorn-std-starlette",
            "starlette",
            _uvicorn_standard,
            "uvicorn httptools+uvloop, 1 worker, Starlette app",
        ),
        Server(
            "gunicorn-wsgi", "raw-wsgi", _gunicorn, "gunicorn sync, 1 worker, raw WSGI hello app"
        ),
        Server("gunicorn-flask", "flask", _gunicorn, "gunicorn sync, 1 worker, Flask app"),
        Server(
            "httpserver",
            "http-hello",
            _httpserver,
            "http.server ThreadingHTTPServer, hello handler",
        ),
    )
}


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env(app: str, variant: str, hooktel: Path) -> dict[str, str]:
    """The server's environment: the bench selection, the hooktel snapshot it imports
    (the directory holding the package), and no OTEL_* configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env[APP_ENV] = app
    env[VARIANT_ENV] = variant
    path = [str(hooktel), str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class Running:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server's processes (its process group)."""
        return group_cpu_seconds(self.pid)


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of the live processes in process group `pgid` (Linux /proc; else 0)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process is gone, or not readable
        # after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
        # cmajflt utime stime
        if len(fields) > 12 and fields[2] == str(pgid):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running(server: Server, variant: str, hooktel: Path) -> Iterator[Running]:
    """Start `server` with `variant` and the hooktel in `hooktel`, yield it once it answers;
    always stop it."""
    port = free_port()
    env = child_env(server.app, variant, hooktel)
    with tempfile.TemporaryFile() as log:
        proc = start(pinned(server.command(port), SERVER_CORE), log, env)
        try:
            try:
                _wait_ready(proc, port)
            except ServerError as exc:
                raise ServerError(f"{server.name}/{variant}: {exc}\n{_tail(log)}") from None
            yield Running(f"http://{HOST}:{port}/", proc.pid)
            if proc.poll() is not None:
                raise ServerError(f"{server.name}/{variant} exited during the run\n{_tail(log)}")
        finally:
            stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"exited with status {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read()
            finally:
                conn.close()
            if response.status == 200 and body == b"hello":
                return
            raise ServerError(f"answered {response.status} {body[:100]!r}, expected 200 hello")
        except OSError as exc:
            last_error = exc
            time.sleep(0.05)
    raise ServerError(f"not answering after {START_TIMEOUT:.0f} s ({last_error})")


_started: set[subprocess.Popen[bytes]] = set()  # what `stop_all()` stops


def start(
    command: list[str], log: Any, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A process in its own session and process group (gunicorn's worker stops with it)."""
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _started.add(proc)
    return proc


def stop_all() -> None:
    """Stop every process `start()` started that is still there (the harness is stopping)."""
    for proc in list(_started):
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group, then SIGKILL it if it lingers.

    SIGINT, not SIGTERM: uvicorn re-raises the signal that stopped it once it
    has shut down, and only under SIGINT does Python then exit through
    `atexit`, where a server process flushes its spans (`apps.build`).
    """
    _started.discard(proc)
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # stragglers (a gunicorn worker)
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(log: object, limit: int = 4000) -> str:
    assert hasattr(log, "seek") and hasattr(log, "read")
    log.seek(0)
    text: str = log.read().decode("utf-8", "replace")
    return text[-limit:]
