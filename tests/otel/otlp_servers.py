"""Servers running `tests.otel.apps.otlp_app`, exporting to an OTLP receiver process.

    with receiver_process() as receiver, otlp_server("uvicorn", tmp_path, receiver) as app:
        app.get("/work"); app.stats(flush=True)

The app is configured only through the environment (`OTEL_EXPORTER_OTLP_*`,
`OTEL_BSP_*`), as a user's would be. `stop()` stops it the way a deployment
does (SIGTERM) and waits, so a test can check what a clean exit sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.events import wait_for
from tests.support.servers import ROOT, ServerSpec, StderrLog, listening_port

APP = "tests.otel.apps.otlp_app"
SPECS = {
    "uvicorn": ServerSpec(
        ("-m", "uvicorn", f"{APP}:asgi_app", "--host=127.0.0.1", "--port=0", "--no-access-log"),
        r"Uvicorn running on http://127\.0\.0\.1:(\d+)",
    ),
    "gunicorn": ServerSpec(
        (
            "-m",
            "gunicorn",
            "--bind=127.0.0.1:0",
            "--workers=2",
            "--worker-class=sync",
            "--graceful-timeout=20",
            "--no-control-socket",  # its default path is shared by every gunicorn on the machine
            f"{APP}:wsgi_app",
        ),
        r"Listening at: http://127\.0\.0\.1:(\d+)",
    ),
}


@dataclass
class AppServer(StderrLog):
    process: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    http: httpx.Client = field(
        default_factory=lambda: httpx.Client(
            timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        )
    )

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"

    def get(self, target: str) -> httpx.Response:
        return self.http.get(self.url(target))

    def stats(self, flush: bool = False) -> dict[str, Any]:
        """The serving process's processor stats (a gunicorn worker: whichever answers)."""
        response = self.get("/_control/stats" + ("?flush=1" if flush else ""))
        response.raise_for_status()
        return dict(response.json())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` (SIGTERM: as a deployment stops a server), then wait for the exit."""
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def otlp_server(
    kind: str,
    workdir: Path,
    endpoint: str,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[AppServer]:
    """Start `kind` ("uvicorn" or "gunicorn") exporting to `endpoint`; killed if still up."""
    spec = SPECS[kind]
    workdir.mkdir(parents=True, exist_ok=True)
    stderr_path = workdir / "stderr.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, *spec.args[:-1], *args, spec.args[-1]]
    with (workdir / "stdout.log").open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=stdout, stderr=stderr)
    try:
        port = wait_for(lambda: listening_port(spec, stderr_path, process), f"{kind} listens", 30)
        server = AppServer(process, port, stderr_path)
        wait_for(lambda: _answers(server), f"{kind} answers", 30)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _answers(server: AppServer) -> bool:
    try:
        return server.get("/_control/stats").status_code == 200
    except httpx.TransportError:
        return False
