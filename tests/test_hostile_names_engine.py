"""Hostile setup names and late-refused values against the real engine setup (issue 12).

Each zerops.yml here would build and deploy if its one bad value were fine (a Gleam setup on the
local Debian image, with build commands and a start command). ``validate``, ``build``, ``prepare``
and ``deploy`` run as real ``invoke`` processes with the engine tests' settings, and must fail
cleanly: a non-zero exit, a message with file:line:column, no traceback, nothing written (a
folder beside the project with a file in it, the project and its cache folder compared by
listing, modes and content hashes) and nothing made on the engine (no image of the test's
repository, no container or network of the project).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke, make_project

from cri_tasks.model import Project
from cri_tasks.runtime_plan import project_id

pytestmark = pytest.mark.engine

#: (the name as written in zerops.yml, how the message shows it)
HOSTILE = [
    ('"../x"', '"../x"'),
    ('"/abs"', '"/abs"'),
    ('"a/b"', '"a/b"'),
    ('"."', '"."'),
    ('".."', '".."'),
    ('"a\\0b"', '"a\\u0000b"'),
    ('"a\\nb"', '"a\\nb"'),
    ('"' + "n" * 300 + '"', '"' + "n" * 40 + '"…'),
]

GLEAM_SETUP = """\
    build:
      base: gleam@1.5
      os: ubuntu
      buildCommands:
        - mkdir -p out && echo built > out/app
      deployFiles: ./
    run:
      base: gleam@1.5
      os: ubuntu
      start: sleep 3600
"""


def listing(folder: Path) -> list[tuple[str, int, str]]:
    """(path, mode, content hash or link target) of everything under ``folder``."""
    out = []
    for path in sorted([folder, *folder.rglob("*")]):
        st = path.lstat()
        if path.is_symlink():
            what = "-> " + os.readlink(path)
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        out.append((path.relative_to(folder).as_posix(), st.st_mode, what))
    return out


def engine_objects(repository: str, project: Path) -> dict[str, list[str]]:
    """What the engine holds of this test: images of its repository, containers and networks of
    its project."""
    pid = project_id(Project(project / "zerops.yml", ()))

    def ls(*args: str) -> list[str]:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, check=True)
        return done.stdout.split()

    return {
        "images": ls("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={repository}/*"),
        "containers": ls("ps", "-a", "--format", "{{.Names}}", "--filter", f"label=io.cri-tasks.project={pid}"),
        "networks": ls("network", "ls", "--format", "{{.Name}}", "--filter", f"name=cri-{pid}"),
    }


@pytest.fixture
def world(tmp_path: Path, engine_settings: dict[str, Any]) -> tuple[Path, Path, dict[str, Any]]:
    """(the folder all of it lives in, the victim folder beside the project, the settings)."""
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep.txt").write_text("not yours\n")
    os.chmod(victim / "keep.txt", 0o640)
    settings = {**engine_settings, "cache_dir": ".cri", "gleam": {"source": "none"}}
    return tmp_path, victim, settings


def assert_clean_failure(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert expected in proc.stderr, proc.stderr


@pytest.mark.parametrize(("written", "shown"), HOSTILE, ids=[w[:12] for w, _ in HOSTILE])
def test_every_task_refuses_a_hostile_setup_name_and_nothing_is_touched(
    world: tuple[Path, Path, dict[str, Any]], written: str, shown: str
) -> None:
    top, victim, settings = world
    project = make_project(top / "proj", f"zerops:\n  - setup: {written}\n{GLEAM_SETUP}", settings=settings)
    before = listing(top)
    expected = f"zerops.yml:2:12: zerops[0].setup: invalid setup name {shown}: use 1 to 25 lowercase letters"
    for task in ("validate", "build", "prepare", "deploy"):
        assert_clean_failure(invoke(project, task), expected)
    assert listing(top) == before  # the folder beside it, the project, no cache folder
    assert (victim / "keep.txt").read_text() == "not yours\n"
    assert engine_objects(str(settings["repository"]), project) == {"images": [], "containers": [], "networks": []}


def test_two_setups_differing_only_in_case_are_refused_before_any_build(
    world: tuple[Path, Path, dict[str, Any]],
) -> None:
    top, _, settings = world
    text = f"zerops:\n  - setup: app\n{GLEAM_SETUP}  - setup: App\n{GLEAM_SETUP}"
    project = make_project(top / "proj", text, settings=settings)
    before = listing(top)
    proc = invoke(project, "deploy")
    assert_clean_failure(proc, 'zerops.yml:13:12: zerops[1].setup: setup "App" differs only in case from "app"')
    assert listing(top) == before
    assert engine_objects(str(settings["repository"]), project)["images"] == []


def test_deploy_refuses_a_value_found_on_disk_before_building_any_setup(
    world: tuple[Path, Path, dict[str, Any]],
) -> None:
    # "web" is fine and comes first; "api" copies a tree into its runtime image that holds a
    # symlink to the folder beside the project. Before, web was built and deployed, then api
    # was built, and only its runtime prepare refused the link.
    top, victim, settings = world
    text = f"zerops:\n  - setup: web\n{GLEAM_SETUP}  - setup: api\n" + GLEAM_SETUP.replace(
        "      deployFiles: ./\n", "      deployFiles: ./\n      addToRunPrepare: [priv]\n"
    )
    project = make_project(top / "proj", text, settings=settings, files={"priv/config.txt": "x\n"})
    os.symlink(victim, project / "priv" / "escape")
    before = listing(top)
    proc = invoke(project, "deploy", "--json")
    assert_clean_failure(
        proc,
        "zerops.yml:20:25: zerops[1].build.addToRunPrepare[0]: 'priv/escape' is a symlink "
        "pointing outside the project folder",
    )
    assert listing(top) == before  # no cache folder: no build log, no record, no build context
    assert not (project / ".cri").exists()
    assert engine_objects(str(settings["repository"]), project) == {"images": [], "containers": [], "networks": []}
    # validate says the same, and a plain prepare (addToRunPrepare read from the project) too
    assert_clean_failure(invoke(project, "validate"), "zerops.yml:20:25: zerops[1].build.addToRunPrepare[0]")
    assert_clean_failure(
        invoke(project, "prepare", "--setup", "api"), "zerops.yml:20:25: zerops[1].build.addToRunPrepare[0]"
    )
    assert engine_objects(str(settings["repository"]), project)["images"] == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '      envVariables: {TOKEN: "a\\nb"}\n',
            "zerops.yml:13:29: zerops[0].run.envVariables.TOKEN: a NUL or a line break in a value is not supported",
        ),
        (
            "      envReplace: {delimiter: '%%', target: ../../etc/passwd}\n",
            'zerops.yml:13:45: zerops[0].run.envReplace.target: "../../etc/passwd" must stay inside /var/www',
        ),
    ],
)
def test_values_that_only_the_deploy_refused_are_refused_before_the_build(
    world: tuple[Path, Path, dict[str, Any]], line: str, expected: str
) -> None:
    top, _, settings = world
    project = make_project(top / "proj", f"zerops:\n  - setup: app\n{GLEAM_SETUP}{line}", settings=settings)
    before = listing(top)
    proc = invoke(project, "deploy")
    assert_clean_failure(proc, expected)
    assert listing(top) == before
    assert engine_objects(str(settings["repository"]), project)["images"] == []


def test_deploy_files_slash_deploys_the_whole_build_folder(world: tuple[Path, Path, dict[str, Any]]) -> None:
    top, _, settings = world
    project = make_project(
        top / "proj",
        "zerops:\n  - setup: app\n" + GLEAM_SETUP.replace("deployFiles: ./", "deployFiles: /"),
        settings=settings,
    )
    proc = invoke(project, "build", "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["setups"]
    artifact = Path(result["artifact"])
    assert (artifact / "out" / "app").read_text() == "built\n"
    assert (artifact / "zerops.yml").is_file()


@pytest.mark.parametrize("name", ["../../../x", "/abs", "a/b", ".", "..", "a\0b", "a\nb", "n" * 300])
def test_the_phases_refuse_a_name_that_bypassed_the_loader(world: tuple[Path, Path, dict[str, Any]], name: str) -> None:
    # The second wall: a model made without the loader reaches the phases with the engine's settings.
    from dataclasses import replace

    from cri_tasks import build_phase, deploy_phase, runtime_image
    from cri_tasks.errors import CriError
    from cri_tasks.loader import load_project
    from cri_tasks.settings import resolve
    from cri_tasks.store import Store

    top, victim, raw = world
    project = make_project(top / "proj", f"zerops:\n  - setup: app\n{GLEAM_SETUP}", settings=raw)
    loaded = load_project(project / "zerops.yml")
    hostile = Project(loaded.file, (replace(loaded.setups[0], name=name),))
    settings = resolve(raw)
    before = listing(top)
    quiet = lambda _line: None  # noqa: E731
    refused = r"^refusing to use the setup name .* in a path"
    with pytest.raises(CriError, match=refused):
        runtime_image.prepare(hostile, settings, setup=name, report=quiet)
    with pytest.raises(CriError, match=refused):
        deploy_phase.deploy(hostile, settings, setup=name, report=quiet)
    assert listing(top) == before
    with Store(settings.cache_path(hostile.root)) as store:
        with pytest.raises(CriError, match=refused):
            build_phase.build(hostile, hostile.setups[0], settings, report=quiet, store=store)
    assert sorted(p.name for p in (project / ".cri").iterdir()) == [".gitignore", "hits.lock", "records"]
    assert [entry for entry in listing(top) if not entry[0].startswith("proj/.cri")] == before
    assert (victim / "keep.txt").read_text() == "not yours\n"
    assert engine_objects(str(raw["repository"]), project) == {"images": [], "containers": [], "networks": []}
