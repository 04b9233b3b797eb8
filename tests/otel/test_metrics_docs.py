"""docs/metrics.md stays true: every snippet in it runs as written.

The gunicorn snippet (`app.py` and its command) runs in `test_metrics_gunicorn.py`,
which takes both from the page; this module runs the others and checks that no
snippet goes untested.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
RUN_ELSEWHERE = ("# app.py",)


def snippets(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def gunicorn_snippets() -> tuple[str, list[str]]:
    """`app.py` and the gunicorn command line (its arguments after the environment)."""
    [app] = [b for b in snippets("python") if b.startswith("# app.py")]
    [command] = [b for b in snippets("sh") if "gunicorn" in b]
    words = command.split()
    return app, words[words.index("gunicorn") :]


def _run(code: str, cwd: Path) -> str:
    script = cwd / "snippet.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_setup_example_prints_what_the_page_says(tmp_path: Path) -> None:
    [example] = [b for b in snippets("python") if b.startswith("# metrics_example.py")]
    [printed] = [b for b in snippets("text") if "http.server.request.duration" in b]
    assert _run(example, tmp_path) == printed


def test_every_other_snippet_runs(tmp_path: Path) -> None:
    others = [
        b for b in snippets("python") if not b.startswith(("# metrics_example.py", *RUN_ELSEWHERE))
    ]
    assert others, "the page lost its opt-in example"
    for code in others:
        _run(code, tmp_path)


def test_the_page_has_no_snippet_nothing_runs() -> None:
    blocks = re.findall(r"```(\w*)\n.*?```", DOC.read_text(), re.S)
    assert set(blocks) == {"python", "text", "sh"}
    assert len(snippets("sh")) == 1  # the gunicorn command


def test_the_cost_command_runs_as_written() -> None:
    [command] = re.findall(r"\(`(\.venv/bin/python -m benchmarks\.metriccost)`", DOC.read_text())
    result = subprocess.run(
        command.split(), cwd=DOC.parents[1], capture_output=True, text=True, timeout=300, check=True
    )
    rows = [line.split("  ")[0] for line in result.stdout.splitlines()]
    assert rows == [
        "SDK Histogram.record(), 5 attributes",
        "+ metrics, hooktel (aggregated, default)",
        "+ metrics, SDK record()",
    ]
