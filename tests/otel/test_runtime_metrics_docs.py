"""docs/runtime-metrics.md stays true: its example prints what the page says, and its
table names what is reported."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "runtime-metrics.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def test_the_example_prints_what_the_page_says(tmp_path: Path) -> None:
    [example] = blocks("python")
    [printed] = blocks("text")
    script = tmp_path / "runtime_example.py"
    script.write_text(example)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == printed
    assert result.stderr == ""


def test_the_table_names_every_metric() -> None:
    [printed] = blocks("text")
    reported = [line.split()[0] for line in printed.splitlines() if "." in line.split()[0]]
    table = re.findall(r"^\| `([a-z_.]+)` \| (\S+(?: \S+)?) \| `([^`]+)` \|", DOC.read_text(), re.M)
    assert [name for name, _, _ in table] == reported
    units = {
        line.split()[0]: line.split()[1] for line in printed.splitlines() if "." in line.split()[0]
    }
    assert {name: unit for name, _, unit in table} == units


def test_the_page_has_no_snippet_nothing_runs() -> None:
    fenced = re.findall(r"```(\w*)\n.*?```", DOC.read_text(), re.S)
    assert fenced == ["python", "text"]
