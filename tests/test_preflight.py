"""The pre-flight check (what a task would refuse later, before any work) and the second wall of
the phases: a model whose setup name never went through the loader is refused before anything
is written."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest

from cri_tasks import api, build_phase, deploy_phase, runtime_image
from cri_tasks.errors import ConfigError, CriError, Location
from cri_tasks.model import Build, Deploy, PathRef, Project, Run, Setup
from cri_tasks.results import Reporter
from cri_tasks.settings import resolve
from cri_tasks.store import Store

BUILD = "    build:\n      deployFiles: ./\n"


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # restored after each test, whatever project() changes


def project(root: Path, text: str) -> Path:
    """``root``/zerops.yml, made the current folder so that messages name ``zerops.yml``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "zerops.yml").write_text(textwrap.dedent(text).lstrip())
    os.chdir(root)
    return Path("zerops.yml")


def listing(folder: Path) -> list[tuple[str, int, str]]:
    """(path, mode, sha256 of the content or the link target) of everything under ``folder``."""
    out = []
    for path in sorted([folder, *folder.rglob("*")]):
        st = path.lstat()
        if path.is_symlink():
            what = "link:" + os.readlink(path)
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        out.append((path.relative_to(folder.parent).as_posix(), st.st_mode, what))
    return out


def never(*_a: object, **_k: object) -> None:
    raise AssertionError("a phase ran although the pre-flight check should have refused")


def test_validate_refuses_an_add_to_run_prepare_tree_with_a_symlink_leading_outside(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    file = project(
        tmp_path / "proj", "zerops:\n  - setup: app\n    build:\n      deployFiles: ./\n      addToRunPrepare: [priv]\n"
    )
    (tmp_path / "proj" / "priv").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "proj" / "priv" / "escape")
    with pytest.raises(ConfigError) as caught:
        api.validate(file)
    assert str(caught.value).startswith(
        "zerops.yml:5:25: zerops[0].build.addToRunPrepare[0]: 'priv/escape' is a symlink "
        "pointing outside the project folder"
    )


def test_validate_refuses_a_deploy_files_entry_that_resolves_outside(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    file = project(tmp_path / "proj", "zerops:\n  - setup: app\n    build:\n      deployFiles: [dist/~]\n")
    os.symlink(tmp_path / "outside", tmp_path / "proj" / "dist")
    with pytest.raises(ConfigError) as caught:
        api.validate(file)
    assert str(caught.value) == (
        f"zerops.yml:4:21: zerops[0].build.deployFiles[0]: 'dist/~' points outside the "
        f"project folder (to {os.path.realpath(tmp_path / 'outside')})"
    )


def test_paths_the_build_will_create_are_not_required_before_it(tmp_path: Path) -> None:
    file = project(
        tmp_path / "proj",
        "zerops:\n  - setup: app\n    build:\n      deployFiles: [build/~]\n      addToRunPrepare: [build/priv]\n",
    )
    assert api.validate(file).project.setup_names() == ["app"]


def test_deploy_refuses_every_setup_it_cannot_deploy_before_building_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy_phase, "deploy", never)
    file = project(
        tmp_path / "proj",
        """
        zerops:
          - setup: good
            build: {deployFiles: ./}
            run: {start: ./app}
          - setup: nostart
            build: {deployFiles: ./}
          - setup: nobuild
            run: {start: ./app}
          - setup: badref
            build: {deployFiles: ./}
            run: {start: ./app, envVariables: {A: "${A}", C: "${nope}"}}
          - setup: node
            build: {deployFiles: ./, base: nodejs@20}
            run: {start: ./app, base: nodejs@20}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        api.deploy(file)
    lines = str(caught.value).splitlines()
    assert lines[0] == "zerops.yml:5:5: zerops[1].run: run.start or run.startCommands is needed to deploy"
    assert lines[1] == (
        "zerops.yml:7:5: zerops[2]: has no build section: nothing to build or deploy (it needs build.deployFiles)"
    )
    # a cycle can never resolve; a reference that names nothing only warns (deploy_phase)
    assert lines[2] == "zerops.yml:11:43: zerops[3].run.envVariables.A: reference cycle A -> A"
    assert lines[3].startswith("zerops.yml:13:36: zerops[4].build.base: unsupported base 'nodejs@20'")
    assert lines[4].startswith("zerops.yml:14:31: zerops[4].run.base: unsupported base 'nodejs@20'")
    assert len(lines) == 5
    assert not (tmp_path / "proj" / ".cri").exists()


def test_build_refuses_a_base_it_cannot_build_before_opening_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_phase, "build", never)
    file = project(tmp_path / "proj", "zerops:\n  - setup: app\n    build: {deployFiles: ./, base: go@1}\n")
    with pytest.raises(ConfigError, match=r"^zerops\.yml:3:36: zerops\[0\]\.build\.base: unsupported base 'go@1'"):
        api.build(file)
    assert not (tmp_path / "proj" / ".cri").exists()


def test_build_refuses_every_base_it_cannot_put_into_the_build_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, item 9: a second base is never dropped silently; Gleam first or not."""
    monkeypatch.setattr(build_phase, "build", never)
    file = project(
        tmp_path / "proj",
        "zerops:\n  - setup: app\n    build: {deployFiles: ./, base: [nodejs@22, gleam@1.5, gleam@1]}\n",
    )
    with pytest.raises(ConfigError) as caught:
        api.build(file)
    text = str(caught.value)
    assert (
        "zerops.yml:3:36: zerops[0].build.base[0]: cri-tasks cannot provide 'nodejs@22' in the build container" in text
    )
    assert "zerops[0].build.base[2]: a second Gleam base 'gleam@1'" in text
    assert "base[1]" not in text  # the Gleam base it can provide
    assert not (tmp_path / "proj" / ".cri").exists()


# -- the second wall: phases called with a name that never went through the loader ---------------

BYPASSED = ["../../../victim", "/abs", "a/b", ".", "..", "a\0b", "a\nb", "x" * 300, "-rf"]


def hostile_project(tmp_path: Path, name: str) -> tuple[Project, Path]:
    """A model with setup ``name`` (no loader), and a folder beside the project holding a file."""
    victim = tmp_path / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "keep.txt").write_text("mine")
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "zerops.yml").write_text("zerops: []\n")
    ref = PathRef("./", "zerops[0].build.deployFiles", Location("zerops.yml", 4, 20))
    setup = Setup(
        name, 0, Run(start=None), Deploy(), build=Build(deploy_files=(ref,)), location=Location("zerops.yml", 2, 5)
    )
    return Project(root / "zerops.yml", (setup,)), victim


def quiet() -> Reporter:
    return lambda _line: None


@pytest.mark.parametrize("name", BYPASSED, ids=[repr(n[:12]) for n in BYPASSED])
def test_the_phases_refuse_a_name_that_bypassed_the_loader_before_writing(tmp_path: Path, name: str) -> None:
    proj, victim = hostile_project(tmp_path, name)
    before = listing(victim)
    settings = resolve({"gleam": {"source": "none"}})
    cache = settings.cache_path(proj.root)
    calls = [
        lambda: runtime_image.prepare(proj, settings, setup=name, report=quiet()),
        lambda: deploy_phase.deploy(proj, settings, setup=name, report=quiet()),
    ]
    for call in calls:
        with pytest.raises(CriError, match=r"^refusing to use the setup name .* in a path"):
            call()
        assert not cache.exists()  # not even the cache folder
    with Store(cache) as store:  # build() is handed an open store: the cache folder exists
        with pytest.raises(CriError, match=r"^refusing to use the setup name .* in a path"):
            build_phase.build(proj, proj.setups[0], settings, report=quiet(), store=store)
    assert sorted(p.name for p in cache.iterdir()) == [
        ".gitignore",
        "hits.lock",
        "records",
    ]  # no build/, logs/ or locks/
    assert listing(victim) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "victim"]


@pytest.mark.parametrize("name", BYPASSED, ids=[repr(n[:12]) for n in BYPASSED])
def test_the_pre_flight_check_refuses_it_too_with_the_setup_place(tmp_path: Path, name: str) -> None:
    from cri_tasks.preflight import check

    proj, _ = hostile_project(tmp_path, name)
    for task in ("validate", "prepare", "build", "deploy"):
        with pytest.raises(ConfigError) as caught:
            check(proj, proj.setups, resolve(None), task)
        (problem,) = caught.value.problems
        assert str(problem).startswith("zerops.yml:2:5: zerops[0].setup: refusing to use the setup name ")


def test_deploy_refuses_an_unknown_target_or_bad_target_settings_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy_phase, "deploy", never)
    file = project(
        tmp_path / "proj", "zerops:\n  - setup: app\n    build: {deployFiles: ./}\n    run: {start: ./app}\n"
    )
    with pytest.raises(ConfigError, match=r"^cri\.target: unknown deploy target 'k8s'"):
        api.deploy(file, settings={"target": "k8s"})
    with pytest.raises(ConfigError, match=r"^cri\.swarm\.parallelism: expected 0 \(all at once\) or more"):
        api.deploy(file, settings={"target": "swarm", "swarm": {"parallelism": -1}})
    assert not (tmp_path / "proj" / ".cri").exists()
