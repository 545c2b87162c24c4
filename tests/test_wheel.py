"""The built distributions: the wheel holds exactly the package's source files (every module,
every template, py.typed) and the LICENSE, with the metadata indexes read; an installed copy
renders from another folder; the sdist unpacks into a tree whose tests run.

The wheel and sdist are the ones scripts/test built and installed (``CRI_TEST_WHEEL``,
``CRI_TEST_SDIST``); run by hand, the tests build them once (sdist, then the wheel from it, as
scripts/install does).
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    given = os.environ.get("CRI_TEST_WHEEL"), os.environ.get("CRI_TEST_SDIST")
    if given[0] and given[1]:
        return Path(given[0]), Path(given[1])
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("cri_tasks-*.whl")
    (sdist,) = out.glob("cri_tasks-*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def wheel(dists: tuple[Path, Path]) -> Path:
    return dists[0]


@pytest.fixture(scope="module")
def sdist(dists: tuple[Path, Path]) -> Path:
    return dists[1]


def tracked_files(folder: str) -> set[str]:
    """Files under ``folder`` of the source tree, as paths relative to the repository, without
    what running the code leaves there (bytecode caches)."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_wheel_holds_every_module_template_and_the_license_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    package = {n for n in names if not n.startswith(info + "/")}
    expected = (
        {p for p in tracked_files("cri_tasks") if p.endswith(".py")}
        | {"cri_tasks/py.typed"}
        | {"cri_tasks/templates/" + p.removeprefix("templates/") for p in tracked_files("templates")}
    )
    assert sorted(package - expected) == [] and sorted(expected - package) == []
    assert "cri_tasks/targets/local.py" in package and "cri_tasks/__main__.py" in package
    assert f"{info}/licenses/LICENSE" in names
    metadata = email.parser.Parser().parsestr(zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode())
    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier")
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)} <= set(classifiers)
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert metadata["Requires-Python"] == ">=3.10"


def test_the_wheel_has_no_top_level_tasks_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "cri_tasks/templates/alpine.Dockerfile.j2" in names
    assert "cri_tasks/templates/ubuntu.Dockerfile.j2" in names
    assert "cri_tasks/py.typed" in names
    assert not [n for n in names if n in ("tasks.py", "noxfile.py") or n.startswith(("tests/", "examples/"))]


def test_an_installed_wheel_renders_a_template_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
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


def test_the_sdist_unpacks_into_a_tree_whose_tests_run_without_the_corpus_or_ci(sdist: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (top,) = tmp_path.iterdir()
    unpacked = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
    # what a test run reads: the suite with its fixtures, the example, the bench, the scripts,
    # this repository's noxfile, the docs and the license, besides the package's source
    needed = (
        tracked_files("tests")
        | tracked_files("examples")
        | tracked_files("bench")
        | tracked_files("scripts")
        | tracked_files("docs")
        | tracked_files("cri_tasks")
        | tracked_files("templates")
        | {"LICENSE", "README.md", "SECURITY.md", "setup.cfg", "setup.py", "pyproject.toml", "noxfile.py", "tasks.py"}
    )
    needed = {p for p in needed if not p.startswith(("examples/hello/.cri/", "examples/hello/build/"))}
    assert sorted(needed - unpacked) == []
    assert not [p for p in unpacked if "__pycache__" in p or "/.cri/" in p]
    # Its tests run there against the installed cri-tasks, with nothing beside the tree (the
    # corpus tests skip) and outside CI; a few quick files stand for the suite.
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CRI_SHARED_DIR", "CRI_TEST_INSTALL")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_corpus.py",
            "tests/test_bench.py",
            "tests/test_installed.py",
        ],
        cwd=top,
        capture_output=True,
        text=True,
        env={**env, "PYTHONSAFEPATH": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "corpus not found" in proc.stdout
