"""Which hooktel is measured: a snapshot of its source, taken when the run starts.

Others may commit to `src/` during a ten-minute run, and every server process
imports hooktel anew. So the run copies the package once, puts the copy first
on `sys.path` (here) and on each server's `PYTHONPATH`, and records the git
commit it came from. A run may measure several snapshots side by side
(`--source NAME=PATH`, e.g. an older checkout's `src`): each is copied, and
every server run gets the one it measures; this process imports the first.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Source:
    name: str  # "" when a run measures one snapshot (load runs keep the variant's own name)
    path: Path  # holds the snapshot's `hooktel` package: first on its servers' PYTHONPATH
    of: Path  # the package it was copied from


def installed_package() -> Path:
    """The directory of the hooktel package this environment imports."""
    spec = importlib.util.find_spec("hooktel")
    if spec is None or spec.origin is None:
        raise RuntimeError("hooktel is not installed (scripts/setup.sh installs it)")
    return Path(spec.origin).parent


def snapshot_hooktel(dest: Path, packages: dict[str, Path]) -> list[Source]:
    """Copy each named hooktel package into `dest`; this process imports the first."""
    if "hooktel" in sys.modules:
        raise RuntimeError("hooktel was imported before its snapshot was taken")
    sources = []
    for name, package in packages.items():
        path = dest / (name or "installed")
        shutil.copytree(package, path / "hooktel", ignore=shutil.ignore_patterns("__pycache__"))
        sources.append(Source(name, path, package))
    sys.path.insert(0, str(sources[0].path))
    return sources


def git_state(where: Path) -> dict[str, Any]:
    """The commit of the checkout `where` is in, and whether its `src/` differs from it."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    top = git("rev-parse", "--show-toplevel")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_dirty": bool(top and git("status", "--porcelain", "--", f"{top}/src")),
    }
