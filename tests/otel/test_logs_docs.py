"""docs/logs.md stays true: every snippet runs as written and prints what the page says
(the ids, new each run, and the time aside)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "logs.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
BIN = Path(sys.executable).parent


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text())


def normalized(text: str) -> list[str]:
    """Lines with the ids, times and file line numbers that differ from run to run replaced."""
    text = re.sub(r"\b[0-9a-f]{32}\b", "<trace>", text)
    text = re.sub(r"\b[0-9a-f]{16}\b", "<span>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", "<time>", text)
    return [line for line in text.splitlines() if line.strip()]


def printed_after(code: str) -> str:
    """The `text` block right after a `python` block: what it prints."""
    found = blocks()
    index = found.index(("python", code))
    language, text = found[index + 1]
    assert language == "text", "each example is followed by what it prints"
    return text


EXAMPLES = [code for language, code in blocks() if language == "python" and "run with" in code]


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**base, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("code", EXAMPLES, ids=lambda code: code.split(":")[0][2:])
def test_the_example_prints_what_the_page_says(code: str, tmp_path: Path) -> None:
    for library in ("structlog", "loguru"):  # not in the run at the OpenTelemetry floor
        if f"import {library}" in code or f"from {library} " in code:
            pytest.importorskip(library)
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env(),
        check=True,
    )
    assert normalized(result.stdout + result.stderr) == normalized(printed_after(code))


def test_the_opentelemetry_instrument_command(tmp_path: Path) -> None:
    [app] = [
        code for language, code in blocks() if language == "python" and code.startswith("# app.py")
    ]
    [command] = [code.strip() for language, code in blocks() if language == "sh"]
    (tmp_path / "app.py").write_text(app)
    result = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env(),
        check=True,
    )
    lines = [line for line in result.stderr.splitlines() if "[app]" in line]
    found = blocks()
    after = found[found.index(("sh", command + "\n")) + 1]
    assert after[0] == "text"
    assert normalized("\n".join(lines)) == normalized(after[1])


def test_the_cost_command_runs_as_written() -> None:
    pytest.importorskip("opentelemetry.instrumentation.logging")  # contrib's, to compare
    [command] = re.findall(r"\(`(\.venv/bin/python -m benchmarks\.logcost)`", DOC.read_text())
    result = subprocess.run(
        [sys.executable, *command.split()[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    header, in_span, outside = result.stdout.splitlines()
    assert header.startswith("added ns per logging record, median of ")
    assert in_span.startswith("in a span ") and outside.startswith("outside a span ")
    ratio = float(in_span.split()[-1])
    assert ratio <= 0.5, f"hooktel's cost per record in a span is {ratio} of contrib's"


def test_every_block_is_run() -> None:
    languages = [language for language, _ in blocks()]
    assert set(languages) == {"python", "sh", "text"}
    python = [code for language, code in blocks() if language == "python"]
    assert len(python) == len(EXAMPLES) + 1  # the examples, and app.py for the command
    assert languages.count("sh") == 1
