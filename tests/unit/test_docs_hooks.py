"""docs/hooks.md stays true: its example runs, and it covers the whole public API."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import hooktel

DOC = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def test_every_public_name_is_documented() -> None:
    text = DOC.read_text()
    missing = [n for n in hooktel.__all__ if n != "__version__" and f"{n}" not in text]
    assert missing == []


def test_the_example_instrument_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [example] = [b for b in blocks if b.startswith("# example_instrument.py")]
    script = tmp_path / "example_instrument.py"
    script.write_text(example)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert re.fullmatch(
        r"GET /hello -> 200 in \d+\.\d\d ms trace=4bf92f3577b34da6a3ce929d0e0e4736 id=req-1",
        lines[0],
    )
    assert lines[1] == "client got b'hello\\n' from access-log"
