"""docs/native.md's snippet and command run as written, and say what the page says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "native.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", DOC, re.S | re.M)


@pytest.mark.pure_python
def test_the_snippet_and_the_command_print_what_the_page_says(tmp_path: Path) -> None:
    (python,) = [text for lang, text in BLOCKS if lang == "python"]
    (command,) = [text.strip() for lang, text in BLOCKS if lang == "sh"]
    (tmp_path / "which_core.py").write_text(python)
    env = {k: v for k, v in os.environ.items() if k != "HOOKTEL_PURE_PYTHON"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    default = subprocess.run(
        [sys.executable, "which_core.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    forced = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert default.stdout.strip() == "True"  # this suite's install built the core
    assert forced.stdout.strip() == "False"
    assert forced.stderr == ""  # choosing the twins on purpose logs nothing
