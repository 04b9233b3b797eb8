"""Make `tests.support` importable however pytest is started, with pytest's asserts.

Server subprocesses load their apps as `tests.support.apps`, so the test
process imports the helpers under the same name: the repository root must
be on `sys.path` (`python -m pytest` puts it there, the `pytest` script does not).
The shared contract tests and the event checker live outside `test_*.py`
files, so their asserts are rewritten explicitly to explain their failures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.register_assert_rewrite("tests.servers.contract", "tests.support")
