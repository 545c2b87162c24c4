"""The package's floors (setup.cfg's import-linter contracts) hold in the source tree, every module
stands on a floor, and the contracts do fail on an import that goes up or round in a circle.

The contracts read the source tree, not the installed package: they skip where the tests run
without it (an installed copy of the tests), and only there.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cri_tasks"
SETUP_CFG = ROOT / "setup.cfg"

pytestmark = pytest.mark.skipif(
    not (PACKAGE / "__init__.py").is_file() or not SETUP_CFG.is_file(),
    reason="the source tree (cri_tasks/, setup.cfg) is not beside the tests",
)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` of this environment on the tree in ``cwd`` (its setup.cfg, its cri_tasks/:
    the command puts ``cwd`` first on sys.path), without a cache folder left in the tree."""
    script = Path(sys.executable).with_name("lint-imports")
    assert script.is_file(), f"{script} is missing: import-linter is one of the test extras (setup.cfg)"
    return subprocess.run(
        [str(script), "--no-cache", "--no-logo", str(cwd / "setup.cfg")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def layer_names(section: str) -> set[str]:
    """The module names a layers contract of setup.cfg lists, without the optional marks."""
    cfg = configparser.ConfigParser()
    cfg.read(SETUP_CFG)
    names = set()
    for line in cfg[section]["layers"].split("\n"):
        for name in line.replace("|", ":").split(":"):
            if name.strip():
                names.add(name.strip().strip("()"))
    return names


def modules_in(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in folder.iterdir() if (p / "__init__.py").is_file()
    }


def test_the_package_keeps_its_floors_and_has_no_import_circle() -> None:
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_every_module_of_the_package_stands_on_a_floor() -> None:
    """A module no layer names is checked by no layers contract: each new one is placed."""
    missing = modules_in(PACKAGE) - layer_names("importlinter:contract:layers")
    assert not missing, f"setup.cfg [importlinter:contract:layers] names no floor for: {', '.join(sorted(missing))}"
    missing = modules_in(PACKAGE / "targets") - layer_names("importlinter:contract:targets")
    assert not missing, f"setup.cfg [importlinter:contract:targets] names no floor for: {', '.join(sorted(missing))}"


@pytest.mark.parametrize(
    ("module", "line", "importer", "imported"),
    [
        # a target importing the phase that drives it: a floor upward, and a circle
        ("targets/base.py", "from .. import deploy_phase", "cri_tasks.targets.base", "cri_tasks.deploy_phase"),
        # the settings reading the adapter that reads them
        ("config.py", "from .tasks import collection", "cri_tasks.config", "cri_tasks.tasks"),
        # one target built on the other
        ("targets/swarm.py", "from .local import LocalTarget", "cri_tasks.targets.swarm", "cri_tasks.targets.local"),
    ],
)
def test_an_upward_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, importer: str, imported: str
) -> None:
    shutil.copytree(PACKAGE, tmp_path / "cri_tasks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SETUP_CFG, tmp_path / "setup.cfg")
    with (tmp_path / "cri_tasks" / module).open("a") as f:
        f.write(f"\n\ndef _upward() -> None:\n    {line}  # noqa\n")
    out = lint_imports(tmp_path)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "BROKEN" in out.stdout and f"- {importer} -> {imported} (l." in out.stdout, out.stdout


def test_config_declares_the_settings_the_collection_declares() -> None:
    """config.py spells the collection's configuration from the settings instead of importing
    tasks.py (which imports config): the two must not drift apart."""
    from cri_tasks.settings import DEFAULTS, declared, merge
    from cri_tasks.tasks import collection

    assert collection().configuration() == {"cri": declared(merge(DEFAULTS, {}))}
