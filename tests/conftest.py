"""Make `tests.support` importable however pytest is started.

Server subprocesses load their apps as `tests.support.apps`, so the test
process imports the helpers under the same name: the repository root must
be on `sys.path` (`python -m pytest` puts it there, the `pytest` script does not).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
