"""Which implementation runs, and that the switch between them works."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hooktel
from hooktel import _core

ROOT = Path(__file__).resolve().parents[2]


def _native_flag(env: dict[str, str]) -> str:
    code = "import hooktel; print(hooktel.NATIVE)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip() + result.stderr


def test_the_compiled_core_is_active() -> None:
    assert hooktel.NATIVE is True
    assert _core.core is not None
    assert Path(_core.core.__file__).suffix == ".so"


@pytest.mark.pure_python
def test_pure_python_env_selects_the_twins() -> None:
    env = {**os.environ, "HOOKTEL_PURE_PYTHON": "1"}
    assert _native_flag(env) == "False"


TWINNED = ("hooktel.otel.spans.requestspan", "hooktel.otel.export.encoder")


def _chosen(env: dict[str, str]) -> list[str]:
    code = (
        "import sys, hooktel.otel; from hooktel import _core; "
        f"print(*[_core.twin(name).__file__ for name in {TWINNED!r}])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


@pytest.mark.pure_python
def test_each_extension_is_chosen_once_compiled_or_its_py_twin() -> None:
    """`_core.twin`: the compiled module where it is built, `X_py` under HOOKTEL_PURE_PYTHON=1."""
    compiled = {k: v for k, v in os.environ.items() if k != "HOOKTEL_PURE_PYTHON"}
    assert [Path(path).suffix for path in _chosen(compiled)] == [".so"] * len(TWINNED)
    pure = _chosen({**os.environ, "HOOKTEL_PURE_PYTHON": "1"})
    assert [Path(path).name for path in pure] == [f"{n.rsplit('.', 1)[1]}_py.py" for n in TWINNED]


@pytest.mark.skipif(not os.environ.get("HOOKTEL_EXPECT_SANITIZED"), reason="ASan run only")
def test_the_sanitized_build_is_loaded() -> None:
    """scripts/asan.sh builds into a copy of src/ first on PYTHONPATH: that copy must run."""
    assert _core.core is not None
    assert not Path(_core.core.__file__).is_relative_to(ROOT)
    libraries = Path(f"/proc/{os.getpid()}/maps").read_text()
    assert "libasan" in libraries


def test_no_c_source_uses_cpython_private_api() -> None:
    """Public C API only (capi.h); the vendored pythoncapi_compat.h may use what it backports."""
    sources = [
        path
        for path in (ROOT / "src").rglob("*")
        if path.suffix in (".c", ".h") and path.name != "pythoncapi_compat.h"
    ]
    assert len(sources) >= 10
    private = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources
        for name in re.findall(r"\b_Py[A-Za-z]\w*", path.read_text())
    }
    assert not private


def test_install_without_a_compiler_falls_back_with_a_notice(tmp_path: Path) -> None:
    """No C compiler: the install succeeds, says so in one line, and the twins run."""
    source, target = tmp_path / "source", tmp_path / "site"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "*.so", "build", "__pycache__", "*.egg-info", "benchmarks", "tests", "docs"
        ),
    )
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--target",
            str(target),
            str(source),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    notices = [
        line
        for line in (install.stdout + install.stderr).splitlines()
        if line.strip().startswith("hooktel: C extension")
    ]
    assert len(notices) == 1, install.stdout[-3000:]  # one line, whatever was not built
    assert all(
        name in notices[0]
        for name in ("hooktel._core.compiled", "hooktel.otel.export.encoder", *TWINNED)
    )
    assert not list(target.glob("hooktel/**/*.so"))
    run_env = {k: v for k, v in os.environ.items() if k != "HOOKTEL_PURE_PYTHON"}
    run_env["PYTHONPATH"] = str(target)
    ran = subprocess.run(
        [sys.executable, "-c", "import hooktel; print(hooktel.NATIVE, hooktel.__file__)"],
        env=run_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.split()[0] == "False"
    assert ran.stdout.split()[1].startswith(str(target))
    assert ran.stderr.count("using the pure-Python implementation") == 1
