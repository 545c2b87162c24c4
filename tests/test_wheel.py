"""The built wheel: templates ship inside it, no top-level `tasks` module, rendering works from
an installed copy in a fresh virtual environment, run from another folder."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (found,) = out.glob("cri_tasks-*.whl")
    return found


def test_the_wheel_holds_the_templates_and_no_top_level_tasks_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "cri_tasks/templates/alpine.Dockerfile.j2" in names
    assert "cri_tasks/templates/ubuntu.Dockerfile.j2" in names
    assert "cri_tasks/py.typed" in names
    assert not [n for n in names if n in ("tasks.py", "noxfile.py") or n.startswith(("tests/", "examples/"))]


def test_an_installed_wheel_renders_a_template_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    # The dependencies come from the test environment, after the fresh venv's own packages;
    # the editable install of the checkout is not activated there (.pth files are not chained).
    (site / "zz-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = (
        "import cri_tasks, cri_tasks.dockerfile as d; print(cri_tasks.__file__); "
        "print(d.render('_prepare.j2', {'add_files': False, 'commands': ['a && b']}))"
    )
    out = subprocess.run([str(py), "-c", code], cwd=work, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0].startswith(str(site))
    assert 'RUN ["/bin/sh", "-c", "a && b"]' in out
