"""Every snippet and command in README.md and docs/ runs as written.

Each fenced block is `python` (run as a script, in a fresh directory, under the
file name its first line gives, as `# app.py`), `sh` (each line run with bash,
exactly as written, by the runner below that knows what it does) or `text`
(output and formats, not run). A new block of another kind, or a command no
runner knows, fails `test_every_block_is_run`. docs/benchmarks.md is left out:
its commands are the benchmark rounds themselves (minutes of load on a quiet
machine), which the suite must never run; `tests/test_benchmarks_quick.py`
runs the harness once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement

from tests.otel.otlp_receiver import receiver_thread
from tests.support.events import wait_for

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/hooks.md", "docs/opentelemetry.md")
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lang: str
    text: str

    @property
    def file_name(self) -> str | None:
        """The file a python block is, when its first line says so: `# app.py: ...`."""
        match = re.match(r"# (\w+\.py)\b", self.text)
        return match.group(1) if match else None

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(doc, line, match.group(1), match.group(2)))
    return found


BLOCKS = _blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
COMMANDS = [
    (block, line)
    for block in BLOCKS
    if block.lang == "sh"
    for line in block.text.splitlines()
    if line.strip() and not line.startswith("#")
]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def _write_files(doc: str, where: Path) -> None:
    """The files a doc defines (`# app.py` blocks), for its commands to use."""
    for block in PYTHON:
        if block.doc == doc and block.file_name:
            (where / block.file_name).write_text(block.text)


# ---------------------------------------------------------------- python blocks


@pytest.mark.parametrize("block", PYTHON, ids=str)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / (block.file_name or "snippet.py")
    script.write_text(block.text)
    result = subprocess.run(
        [sys.executable, script.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


class _Served:
    """A server command running in its own process group, its stdout read as it comes."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=_env(UVICORN_PORT=str(self.port), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, ended by its id in `stop()`
        )
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(self._answers, f"`{command}` to answer", 30)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the command exited early:\n{self.text}")
        try:
            httpx.get(self.url("/"), timeout=1.0)
        except httpx.TransportError:
            return False
        return True

    @property
    def text(self) -> str:
        return "".join(self.output)

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_readme_plain_hooks_example_reports_each_request(tmp_path: Path) -> None:
    [block] = [b for b in PYTHON if b.doc == "README.md" and "on_operation_end=on_end" in b.text]
    assert block.file_name == "app.py" and "`uvicorn app:app`" in block.text
    _write_files("README.md", tmp_path)
    served = _Served("uvicorn app:app", tmp_path, {})
    try:
        assert httpx.get(served.url("/hello")).text == "hello"
        printed = wait_for(
            lambda: [line.split() for line in served.output if line.startswith("2 ")],
            "the hook's line for the second request",
            30,
        )
    finally:
        served.stop()
    assert printed[0][:2] == ["2", "200"] and int(printed[0][2]) > 0  # the first: the probe


# ---------------------------------------------------------------- sh commands


def _check_installed(command: str) -> None:
    """A `pip install` line: what it installs is what this environment has.

    It cannot be run here (hooktel is installed from this checkout), so the
    test checks that every requirement it names, and every requirement of
    the extras it names, is installed at a version it allows.
    """
    for token in shlex.split(command, comments=True)[2:]:
        requirement = Requirement(token)
        assert metadata.version(requirement.name), requirement.name
        for extra in requirement.extras:
            for text in metadata.requires(requirement.name) or []:
                needed = Requirement(text)
                if needed.marker is not None and needed.marker.evaluate({"extra": extra}):
                    installed = metadata.version(needed.name)
                    assert needed.specifier.contains(installed, prereleases=True), (
                        f"{needed} is needed by {token}, {installed} is installed"
                    )


def _run_demo(command: str) -> None:
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# trace "), "the tree comes first"
    tree = [line for line in lines if line.startswith("#   ")]
    assert len([line for line in lines if line.startswith("# trace ")]) == 2
    for service, route in (("service-a", "/items/{item_id}"), ("service-b", "/answers/{question}")):
        servers = [line for line in tree if f"{service}  SERVER   GET {route}" in line]
        assert len(servers) == 2, (service, tree)
        assert f"## spans of service.name={service}" in lines
    assert "## spans of service.name=client" in lines


def _run_ci(command: str) -> None:
    """The suite cannot run itself: CI runs this very command (.ci/run)."""
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def _run_zero_code(command: str, doc: str, tmp_path: Path) -> None:
    """Serve the doc's `app.py` with the command; its span must arrive where it says.

    The SDK's batch processor exports within `OTEL_BSP_SCHEDULE_DELAY` (5 s
    unless set): set short here. uvicorn stops by re-raising SIGTERM, so what
    is still in the batch then is lost; the test waits for the span first.
    """
    _write_files(doc, tmp_path)
    with receiver_thread() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        served = _Served(command, tmp_path, env)
        try:
            parent = f"00-{'1' * 32}-{'2' * 16}-01"
            response = httpx.get(served.url("/hello/world"), headers={"traceparent": parent})
            assert response.text == "hello"
            assert response.headers["traceparent"].startswith(f"00-{'1' * 32}-")

            def spans() -> list[dict[str, Any]]:
                if "console" in command:
                    found = _console_spans(served.text)
                else:
                    found = [
                        {"name": s["name"], "service": s["resource"]["service.name"]}
                        for s in receiver.spans
                    ]
                return [s for s in found if s["name"] == "GET /hello/{name}"]

            [span] = wait_for(spans, f"the span of `{command}`", 30)
        finally:
            served.stop()
    if "OTEL_SERVICE_NAME=shop" in command:
        assert span["service"] == "shop"


def _console_spans(out: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed: JSON objects one after another."""
    decoder, spans, index = json.JSONDecoder(), [], out.find("\n{")
    while index >= 0:
        try:
            span, end = decoder.raw_decode(out, index + 1)
        except json.JSONDecodeError:  # still being written
            break
        spans.append({"name": span["name"], "service": span["resource"]["attributes"]})
        index = out.find("\n{", end)
    return spans


def _runner(command: str) -> str:
    if command.startswith("pip install "):
        return "installed"
    if command.startswith("bash scripts/demo.sh"):
        return "demo"
    if command.split("#", maxsplit=1)[0].strip() == "bash scripts/setup.sh && bash scripts/test.sh":
        return "ci"
    if "opentelemetry-instrument " in command and command.endswith(" uvicorn app:app"):
        return "zero-code"
    return "none"


def test_every_block_is_run() -> None:
    assert {b.lang for b in BLOCKS} <= {"python", "sh", "text"}, [
        str(b) for b in BLOCKS if b.lang not in ("python", "sh", "text")
    ]
    unknown = [(str(block), line) for block, line in COMMANDS if _runner(line) == "none"]
    assert unknown == [], "documented commands no test runs"


@pytest.mark.parametrize(
    ("block", "command"), COMMANDS, ids=[f"{b}-{c.split()[0]}" for b, c in COMMANDS]
)
def test_command_runs_as_written(block: Block, command: str, tmp_path: Path) -> None:
    runner = _runner(command)
    if runner == "installed":
        _check_installed(command)
    elif runner == "demo":
        _run_demo(command)
    elif runner == "ci":
        _run_ci(command.split("#", maxsplit=1)[0].strip())
    elif runner == "zero-code":
        _run_zero_code(command, block.doc, tmp_path)
    else:
        pytest.fail(f"no runner for {command!r}")


def test_the_hook_events_example_readme_names_prints_json_lines() -> None:
    assert "`examples/hook_events.py` prints every hook event" in (ROOT / "README.md").read_text()
    result = subprocess.run(
        [sys.executable, "examples/hook_events.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {"start", "end", "error"} <= {event["event"] for event in events}
