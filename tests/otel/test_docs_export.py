"""docs/export.md stays true: its example and its zero-code command run as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.otel.otlp_receiver import OtlpReceiver, receiver_thread

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "export.md"


def _block(language: str, starting: str = "") -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)
    (found,) = [b for b in blocks if b.startswith(starting)]
    return str(found)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with receiver_thread() as running:
        yield running


def _env(receiver: OtlpReceiver) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint.removesuffix("/v1/traces")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def test_the_example_exports_and_prints_its_stats(receiver: OtlpReceiver, tmp_path: Path) -> None:
    script = tmp_path / "export_example.py"
    script.write_text(_block("python", "# export_example.py"))
    done = subprocess.run(
        [sys.executable, str(script)],
        env=_env(receiver),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = "ExportStats(exported=1, dropped=0, failed=0, queued=0, left_out_attributes=0)"
    assert done.stdout.strip() == printed
    assert f"`{printed}`" in " ".join(DOC.read_text().split())  # what the doc says it prints
    (span,) = receiver.spans
    assert (span["name"], span["resource"]["service.name"]) == ("checkout", "shop")


def test_the_zero_code_command_exports_natively(receiver: OtlpReceiver, tmp_path: Path) -> None:
    shutil.copy(ROOT / "tests" / "otel" / "apps" / "zero_code_app.py", tmp_path / "app.py")
    command = _block("sh")
    with subprocess.Popen(
        ["bash", "-c", command],
        env=_env(receiver),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as app:
        assert app.stdout is not None
        first = app.stdout.readline()
        assert first.startswith("listening on "), first + (app.stderr.read() if app.stderr else "")
        port = int(first.split()[-1])
        assert httpx.get(f"http://127.0.0.1:{port}/cart").status_code == 200
        app.communicate(timeout=60)
    assert app.returncode == 0
    (post,) = receiver.posts
    assert post["headers"]["user-agent"].startswith("hooktel/")
    (span,) = receiver.spans
    assert span["resource"]["service.name"] == "shop"
    assert span["attributes"]["url.path"] == "/cart"


def test_the_documented_cost_command_runs() -> None:
    assert "`.venv/bin/python -m benchmarks.exportcost`" in DOC.read_text()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.exportcost"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "encode: Python twin" in done.stdout


def test_the_shutdown_example_returns_in_time_and_counts_what_it_lost(tmp_path: Path) -> None:
    script = tmp_path / "shutdown_example.py"
    script.write_text(_block("python", "# shutdown_example.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert time.monotonic() - started < 2.0 + 10.0  # the shutdown's 2 s, and the start-up
    printed = "ExportStats(exported=0, dropped=0, failed=100, queued=0, left_out_attributes=0)"
    assert done.stdout.strip() == printed
    text = " ".join(DOC.read_text().split())
    assert f"`{printed}`" in text
    (warning,) = [line for line in done.stderr.splitlines() if "hooktel OTLP export" in line]
    said = warning.removeprefix("WARNING:hooktel.otel.export:")
    assert said.startswith("hooktel OTLP export to http://127.0.0.1:9/v1/traces at shutdown: ")
    assert "100 span(s) not sent within the shutdown timeout of 2 s" in said
    assert f"`{said}`" in text  # the warning the doc quotes
