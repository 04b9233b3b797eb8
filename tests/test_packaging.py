"""What a user installs: `python -m build` makes an sdist, then a wheel from that sdist.

The sdist must carry every C source, header and stub, so that the wheel built from it
has each extension compiled; that wheel must then install and import with no compiler
on the machine, and run the compiled core. Built without isolation, with this virtualenv's
setuptools, so no network is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HOOKTEL_PURE_PYTHON")),
    reason="the build does not depend on the implementation chosen: the native run covers it",
)


def _extension_modules() -> list[str]:
    """The modules setup.py builds, from its Distribution, before any command runs."""
    import setuptools  # noqa: F401  (puts setuptools' distutils in place, gone from 3.12)

    # isort: split
    from distutils.core import run_setup

    return [ext.name for ext in run_setup(str(ROOT / "setup.py"), stop_after="init").ext_modules]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist and the wheel built from it, from a clean copy of the checkout."""
    tmp = tmp_path_factory.mktemp("packaging")
    source, out = tmp / "source", tmp / "dist"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "*.so", "build", "dist", "__pycache__", "*.egg-info"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_the_sdist_carries_every_c_source_header_and_stub(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        carried = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = {
        str(path.relative_to(ROOT))
        for pattern in ("*.c", "*.h", "*.pyi")
        for path in (ROOT / "src").rglob(pattern)
    }
    assert wanted, "no C sources found"
    assert wanted <= carried, sorted(wanted - carried)


def test_the_wheel_from_the_sdist_carries_every_extension(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert f"-cp{sys.version_info[0]}{sys.version_info[1]}-" in wheel.name  # not py3-none-any
    names = zipfile.ZipFile(wheel).namelist()
    for module in _extension_modules():
        stem = module.replace(".", "/")
        assert any(name.startswith(f"{stem}.") and name.endswith(".so") for name in names), module


def test_the_wheel_installs_and_runs_native_without_a_compiler(dist: Path, tmp_path: Path) -> None:
    """pip and the import run with only this Python's own folder on PATH: no gcc, no cc."""
    (wheel,) = dist.glob("*.whl")
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k != "HOOKTEL_PURE_PYTHON"}
    env |= {"PATH": str(Path(sys.executable).parent), "CC": "false", "LDSHARED": "false"}
    assert shutil.which("gcc", path=env["PATH"]) is None
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
    install = subprocess.run(
        [*pip, "--target", str(target), str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    code = (
        "import importlib, hooktel; assert hooktel.NATIVE, 'the twins run';"
        f" print(*(importlib.import_module(m).__file__ for m in {_extension_modules()!r}))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    files = ran.stdout.split()
    assert files and all(f.startswith(str(target)) and f.endswith(".so") for f in files), files
