"""What users install is what runs here: under scripts/test (and so in CI) ``cri_tasks`` is the
installed wheel, never the checkout; every module of the installed package imports; ``python -m
cri_tasks`` is the ``cri`` program."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import IN_CI

import cri_tasks

ROOT = Path(__file__).resolve().parents[1]
#: how scripts/test installed cri-tasks: "wheel" or "editable" (unset: pytest started by hand)
INSTALL = os.environ.get("CRI_TEST_INSTALL")


def source_modules() -> set[str]:
    """Every module of the source tree, by dotted name (``cri_tasks.targets.local``...)."""
    names = set()
    for path in (ROOT / "cri_tasks").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def in_checkout(path: str) -> bool:
    return Path(path).resolve().is_relative_to(ROOT / "cri_tasks")


def test_the_tests_run_the_installed_wheel_not_the_checkout() -> None:
    if INSTALL is None and not IN_CI:
        pytest.skip("pytest started by hand: run scripts/test to test the installed wheel")
    assert not (IN_CI and INSTALL == "editable"), "CI tests the installed wheel: unset CRI_EDITABLE"
    if INSTALL == "editable":
        pytest.skip("CRI_EDITABLE=1: an editable install of the checkout, as asked")
    assert not in_checkout(cri_tasks.__file__), f"cri_tasks came from the checkout: {cri_tasks.__file__}"
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(cri_tasks.__file__).resolve().is_relative_to(site), (cri_tasks.__file__, site)
    # The processes the tests start (python -c, python -m invoke) from the checkout's folder too.
    child = subprocess.run(
        [sys.executable, "-c", "import cri_tasks; print(cri_tasks.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert not in_checkout(child), f"a child python imported the checkout: {child}"


def test_every_module_of_the_installed_package_imports_and_none_is_missing() -> None:
    package = Path(cri_tasks.__file__).parent
    found = {info.name for info in pkgutil.walk_packages(cri_tasks.__path__, "cri_tasks.")} | {"cri_tasks"}
    for name in sorted(found):
        module = importlib.import_module(name)
        assert module.__file__ is not None and Path(module.__file__).is_relative_to(package), name
    assert found == source_modules()
    assert "cri_tasks.targets.local" in found and "cri_tasks.__main__" in found


def python_m(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cri_tasks", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_python_m_cri_tasks_is_the_cri_program(tmp_path: Path) -> None:
    version = python_m("--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"cri {cri_tasks.__version__}"
    listed = python_m("--list", cwd=tmp_path)
    assert listed.returncode == 0 and "prepare" in listed.stdout and "deploy" in listed.stdout
    # an error is the program's message and exit code, not a traceback
    failed = python_m("validate", cwd=tmp_path)
    assert failed.returncode == 1
    assert "no zerops.yaml or zerops.yml in" in failed.stderr and "Traceback" not in failed.stderr
