"""The source tree passes ruff: its lint rules and its formatter (pyproject.toml's [tool.ruff]).

Like the import contracts (tests/test_layers.py), this reads the source tree, not the installed
package: it skips where the tests run without it, and only there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (ROOT / "cri_tasks" / "__init__.py").is_file() or not (ROOT / "pyproject.toml").is_file(),
    reason="the source tree (cri_tasks/, pyproject.toml) is not beside the tests",
)


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("ruff")
    assert script.is_file(), f"{script} is missing: ruff is one of the test extras (setup.cfg)"
    return subprocess.run([str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_source_tree_passes_ruffs_lint_rules() -> None:
    proc = ruff("check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_source_tree_is_formatted_as_ruff_formats_it() -> None:
    proc = ruff("format", "--no-cache", "--check", "--diff", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr


def test_the_rules_catch_what_they_are_for(tmp_path: Path) -> None:
    # the project's configuration on a file with an unused import and a line the formatter rewrites
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "bad.py").write_text("import os\nx = {'a':1}\n")
    assert ruff("check", "--no-cache", ".", cwd=tmp_path).returncode == 1
    assert ruff("format", "--no-cache", "--check", ".", cwd=tmp_path).returncode == 1
