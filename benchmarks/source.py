"""Which hooktel is measured: a snapshot of its source, taken when the run starts.

Others may commit to `src/` during a ten-minute run, and every server process
imports hooktel anew. So the run copies the package once, puts the copy first
on `sys.path` (here) and on `PYTHONPATH` (for the servers), and records the
git commit it came from.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .servers import ROOT


def snapshot_hooktel(dest: Path) -> Path:
    """Copy the hooktel package into `dest` and make this process and its servers use it."""
    if "hooktel" in sys.modules:
        raise RuntimeError("hooktel was imported before its snapshot was taken")
    spec = importlib.util.find_spec("hooktel")
    if spec is None or spec.origin is None:
        raise RuntimeError("hooktel is not installed (scripts/setup.sh installs it)")
    package = Path(spec.origin).parent
    shutil.copytree(package, dest / "hooktel", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(dest))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dest), os.getenv("PYTHONPATH")]))
    return package


def git_state() -> dict[str, Any]:
    """The commit, and whether `src/` differs from it (a dirty tree is measured as it is)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "src_dirty": bool(git("status", "--porcelain", "--", "src")),
    }
