"""The three ways in, as users run them: real ``nox``, ``invoke`` and ``cri`` processes on projects
made in tmp_path, one invoke.yaml configuring all of them."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_IMAGE, remove_repository_images
from helpers import image_name, invoke, make_project, only

import cri_tasks
from cri_tasks.tasks import TASKS

APP = """
zerops:
  - setup: app
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo entry-points > marker.txt
      start: ./entrypoint.sh run
"""

#: settings that need no engine (render, validate): the local image, no Gleam download
OFFLINE = {"images": {"ubuntu": BASE_IMAGE}, "gleam": {"source": "none"}}

USER_TASK = '''
@task
def hello(c):
    """The user's own task."""
    print("hello from the user's task")
'''

MOUNTED = (
    "from invoke import Collection, task\nfrom cri_tasks import collection\n"
    + USER_TASK
    + """
ns = Collection(hello)
ns.add_collection(collection())
"""
)

IMPORTED_NO_NS = "from invoke import task\nfrom cri_tasks.tasks import prepare, render\n" + USER_TASK

IMPORTED_NS = IMPORTED_NO_NS + "\nfrom invoke import Collection\n\nns = Collection(prepare, render, hello)\n"

NOXFILE = """
import nox

import cri_tasks.nox as cri


@nox.session(venv_backend="none")
def image(session):
    results = cri.prepare(session, setup="app", **OPTIONS)
    session.log(f"returned {results[0].status} {results[0].image}")


@nox.session(venv_backend="none")
def dockerfile(session):
    cri.render(session)


@nox.session(venv_backend="none")
def dockerfile_from_arguments(session):
    cri.render(session, settings={"images": {"ubuntu": "from-arguments:1"}})


@nox.session(venv_backend="none")
def broken(session):
    cri.validate(session, file="broken.yml")
"""


def bin_script(name: str) -> str:
    """A console script of the environment the tests run in (``cri``, ``nox``...)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}: pip install -e ."
    return str(path)


def run(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def cri(project: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run([bin_script("cri"), *args], project, env)


def nox(project: Path, *sessions: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(
        [sys.executable, "-m", "nox", "--noxfile", str(project / "noxfile.py"), "--sessions", *sessions], project, env
    )


def write_noxfile(project: Path, **options: Any) -> None:
    (project / "noxfile.py").write_text(f"OPTIONS = {options!r}\n" + NOXFILE)


def from_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("FROM "))


def listed(output: str) -> list[str]:
    """Task names of a ``--list`` output (wrapped descriptions are indented further)."""
    return sorted(line.split()[0] for line in output.splitlines() if line.startswith("  ") and line[2] != " ")


def explain(project: Path, *task: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    proc = invoke(project, *task, "--explain", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return only(json.loads(proc.stdout))


def offline_project(root: Path, tasks_py: str | None = None, settings: Mapping[str, Any] = OFFLINE) -> Path:
    project = make_project(root, APP, settings=settings)
    if tasks_py is None:
        (project / "tasks.py").unlink()
    else:
        (project / "tasks.py").write_text(tasks_py)
    return project


# --- importing ------------------------------------------------------------------------------

BLOCK_NOX = """
import sys
class NoNox:
    def find_spec(self, name, path=None, target=None):
        if name == "nox" or name.startswith("nox."):
            raise ImportError("nox is not installed")
sys.meta_path.insert(0, NoNox())
"""


def test_cri_tasks_and_all_its_adapters_import_without_nox() -> None:
    code = BLOCK_NOX + (
        "import cri_tasks, cri_tasks.tasks, cri_tasks.cli, cri_tasks.config, cri_tasks.nox\n"
        "cri_tasks.collection(); cri_tasks.cli.program()\n"
        "print(sorted(m for m in sys.modules if m == 'nox' or m.startswith('nox.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_type_checking_imports_of_cri_tasks_nox_resolve_to_the_real_nox() -> None:
    # Run the module's TYPE_CHECKING block for real (nox and its dependencies imported first, as
    # flipping the flag globally would break their own import cycles): `import nox` in
    # cri_tasks/nox.py must bind the real nox, not the module itself, and every hint must resolve.
    code = (
        "import importlib, typing\n"
        "import nox\n"
        "import cri_tasks.nox as adapter\n"
        "typing.TYPE_CHECKING = True\n"
        "adapter = importlib.reload(adapter)\n"
        "assert adapter.nox is not adapter and adapter.nox.__name__ == 'nox', adapter.nox\n"
        "hints = typing.get_type_hints(adapter.prepare)\n"
        "assert hints['session'] is adapter.nox.Session, hints\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# --- nox ------------------------------------------------------------------------------------


@pytest.mark.engine
def test_a_nox_session_prepares_the_image_with_keyword_arguments_winning(
    tmp_path: Path, engine_settings: dict[str, Any], unique: str
) -> None:
    from_file = f"cri-test-{unique}-from-file"
    project = make_project(tmp_path / "proj", APP, settings={**engine_settings, "repository": from_file})
    write_noxfile(project, repository=engine_settings["repository"])
    try:
        proc = nox(project, "image")
    finally:
        remove_repository_images(from_file)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    image = f"{image_name(project, engine_settings['repository'])}:"
    assert "nox > [app] 1/1 echo entry-points > marker.txt" in out  # progress through nox's logger
    assert f"nox > app: built {image}" in out
    assert f"nox > returned built {image}" in out
    assert "Session image was successful" in out
    again = nox(project, "image")
    assert again.returncode == 0 and f"nox > app: up to date {image}" in again.stderr


@pytest.mark.engine
def test_a_failing_prepare_aborts_the_nox_session_with_the_message_and_no_traceback(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    project = make_project(
        tmp_path / "proj", APP.replace("echo entry-points > marker.txt", "exit 4"), settings=engine_settings
    )
    write_noxfile(project)
    proc = nox(project, "image")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert (
        "Session image aborted: [app] PREPARING_RUNTIME_FAILED: zerops.yml:7: run.prepareCommands[0] failed with exit code 4"
        in out
    )
    assert "  command: exit 4" in out
    assert "Traceback" not in out


def test_nox_sessions_read_invoke_yaml_then_invoke_cri_variables_then_arguments(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj",
        APP,
        settings={**OFFLINE, "images": {"ubuntu": "from-yaml:1"}},
        files={"broken.yml": "zerops:\n  - setup: app\n    run:\n      os: beos\n"},
    )
    write_noxfile(project)
    plain = nox(project, "dockerfile")
    assert plain.returncode == 0, plain.stderr
    assert from_line(plain.stderr) == "FROM from-yaml:1"

    proc = nox(
        project, "dockerfile", "dockerfile_from_arguments", "broken", env={"INVOKE_CRI_IMAGES_UBUNTU": "from-env:1"}
    )
    out = proc.stderr
    assert proc.returncode == 1  # the broken session
    assert "* dockerfile: success" in out and "* dockerfile_from_arguments: success" in out
    assert "FROM from-env:1" in out and "FROM from-arguments:1" in out
    assert "Session broken aborted: broken.yml:4:11: zerops[0].run.os: expected one of" in out
    assert "Traceback" not in proc.stdout + out

    bad_env = nox(project, "dockerfile", env={"INVOKE_CRI_PARALLEL": "many"})
    assert bad_env.returncode == 1
    assert (
        "Session dockerfile aborted: cri.parallel: expected a whole number of at least 1, got 'many'" in bad_env.stderr
    )
    assert "Traceback" not in bad_env.stdout + bad_env.stderr


def test_this_repositorys_noxfile_lists_its_sessions() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = run([sys.executable, "-m", "nox", "--list"], root)
    assert proc.returncode == 0, proc.stderr
    assert "* tests" in proc.stdout and "example" in proc.stdout


# --- the cri program ------------------------------------------------------------------------


def test_cri_is_installed_and_prints_its_version(tmp_path: Path) -> None:
    proc = cri(tmp_path, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"cri {cri_tasks.__version__}\n"


def test_cri_lists_every_task_without_a_tasks_py(tmp_path: Path) -> None:
    proc = cri(tmp_path, "--list")
    assert proc.returncode == 0, proc.stderr
    assert listed(proc.stdout) == sorted(t.name for t in TASKS)


@pytest.mark.parametrize("program", ["cri", "invoke"])
def test_cri_and_invoke_read_the_same_invoke_yaml(tmp_path: Path, program: str) -> None:
    tasks_py = None if program == "cri" else "from cri_tasks import collection\nns = collection()\n"
    project = offline_project(tmp_path / "proj", tasks_py, settings={**OFFLINE, "file": "app.yml"})
    (project / "zerops.yml").rename(project / "app.yml")
    proc = cri(project, "validate") if program == "cri" else invoke(project, "validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{project / 'app.yml'}: valid, 1 setup(s)")
    env = {"INVOKE_CRI_IMAGES_UBUNTU": "from-env:2"}
    shown = cri(project, "render", env=env) if program == "cri" else invoke(project, "render", env=env)
    assert shown.returncode == 0, shown.stderr
    assert from_line(shown.stdout) == "FROM from-env:2"


def test_cri_errors_are_a_message_and_exit_code_1(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    proc = cri(project, "validate", "--setup", "nope")
    assert proc.returncode == 1
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr
    (project / "invoke.yaml").write_text("cri: [oops\n")
    broken = cri(project, "validate")
    assert broken.returncode == 1
    assert broken.stderr.startswith("invoke configuration: while parsing a flow sequence")
    assert "invoke.yaml" in broken.stderr and "Traceback" not in broken.stderr


@pytest.mark.engine
def test_cri_prepare_json_builds_then_reuses_without_a_tasks_py(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    project = make_project(tmp_path / "proj", APP, settings=engine_settings)
    (project / "tasks.py").unlink()
    first = cri(project, "prepare", "--json")
    assert first.returncode == 0, first.stderr
    entry = only(json.loads(first.stdout))
    assert entry["status"] == "built" and entry["image"].startswith(
        f"{image_name(project, engine_settings['repository'])}:"
    )
    second = cri(project, "prepare", "--setup", "app", "--json")
    assert second.returncode == 0, second.stderr
    assert only(json.loads(second.stdout))["status"] == "up to date"


# --- composition into a user's tasks.py -------------------------------------------------------


def test_a_mounted_collection_gives_cri_dot_tasks_next_to_the_users_own(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj", MOUNTED)
    shown = invoke(project, "--list")
    assert shown.returncode == 0, shown.stderr
    names = listed(shown.stdout)
    assert names == [
        "cri.build",
        "cri.clean",
        "cri.deploy",
        "cri.logs",
        "cri.prepare",
        "cri.render",
        "cri.rollback",
        "cri.status",
        "cri.stop",
        "cri.validate",
        "hello",
    ]
    proc = invoke(project, "hello", "cri.validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("hello from the user's task\n")
    assert "zerops.yml: valid, 1 setup(s)" in proc.stdout
    rendered = invoke(project, "cri.render")
    assert from_line(rendered.stdout) == f"FROM {BASE_IMAGE}"


@pytest.mark.engine
def test_a_mounted_collection_prepares_with_invoke_yaml_and_defaults(tmp_path: Path, unique: str) -> None:
    project = offline_project(tmp_path / "proj", MOUNTED, settings={**OFFLINE, "repository": f"myrepo-{unique}"})
    entry = explain(project, "cri.prepare")
    assert entry["status"] == "would build"
    assert entry["image"].startswith(f"{image_name(project, f'myrepo-{unique}')}:")
    assert (project / ".cri").is_dir()  # cache_dir keeps its default


@pytest.mark.parametrize("tasks_py", [IMPORTED_NO_NS, IMPORTED_NS], ids=["without-ns", "with-ns"])
def test_single_tasks_imported_to_the_root_keep_their_defaults(tmp_path: Path, tasks_py: str) -> None:
    project = offline_project(tmp_path / "proj", tasks_py, settings={"images": {"ubuntu": "from-yaml:3"}})
    shown = invoke(project, "--list")
    assert shown.returncode == 0, shown.stderr
    assert listed(shown.stdout) == ["hello", "prepare", "render"]
    rendered = invoke(project, "render")
    assert rendered.returncode == 0, rendered.stderr
    assert from_line(rendered.stdout) == "FROM from-yaml:3"
    # the other settings fall back to the defaults: the Gleam CLI of the release
    assert "releases/download/v1.5.1/gleam-v1.5.1" in rendered.stdout
    # a key set in invoke.yaml can be overridden from the environment
    env = invoke(project, "render", env={"INVOKE_CRI_IMAGES_UBUNTU": "from-env:3"})
    assert from_line(env.stdout) == "FROM from-env:3"


def test_single_tasks_take_every_invoke_cri_variable_once_the_root_declares_the_settings(tmp_path: Path) -> None:
    # Without a declared key, Invoke ignores its variable: declare them all on the user's root.
    tasks_py = IMPORTED_NS + "\nfrom cri_tasks import collection\n\nns.configure(collection().configuration())\n"
    project = offline_project(tmp_path / "proj", tasks_py, settings={})
    env = invoke(project, "render", env={"INVOKE_CRI_IMAGES_UBUNTU": "from-env:6"})
    assert env.returncode == 0, env.stderr
    assert from_line(env.stdout) == "FROM from-env:6"


@pytest.mark.engine
def test_a_single_imported_prepare_runs_at_the_root(tmp_path: Path, unique: str) -> None:
    project = offline_project(tmp_path / "proj", IMPORTED_NS, settings={**OFFLINE, "repository": f"r-{unique}"})
    assert explain(project, "prepare")["image"].startswith(f"{image_name(project, f'r-{unique}')}:")


@pytest.mark.engine
def test_invoke_yaml_overrides_one_setting_and_the_others_keep_their_defaults(tmp_path: Path, unique: str) -> None:
    project = offline_project(
        tmp_path / "proj",
        "from cri_tasks import collection\nns = collection()\n",
        settings={"repository": f"myrepo-{unique}"},
    )
    entry = explain(project, "prepare")
    assert entry["image"].startswith(f"{image_name(project, f'myrepo-{unique}')}:")
    assert (project / ".cri").is_dir()
    rendered = invoke(project, "render")
    assert from_line(rendered.stdout) == "FROM ubuntu:24.04"  # images keep their defaults
    env = invoke(project, "render", env={"INVOKE_CRI_IMAGES_UBUNTU": "from-env:4"})
    assert from_line(env.stdout) == "FROM from-env:4"


@pytest.mark.engine
def test_a_root_collection_configuring_cri_keeps_the_plugins_other_defaults(tmp_path: Path, unique: str) -> None:
    # pyinvoke/invoke#782: the root's {"cri": {...}} replaces the mounted collection's whole dict.
    tasks_py = textwrap.dedent(f"""
        from invoke import Collection
        from cri_tasks import collection

        ns = Collection()
        ns.configure({{"cri": {{"repository": "x-{unique}"}}}})
        ns.add_collection(collection())
    """)
    project = offline_project(tmp_path / "proj", tasks_py)
    entry = explain(project, "cri.prepare")
    assert entry["image"].startswith(f"{image_name(project, f'x-{unique}')}:")  # from configure()
    assert (project / ".cri").is_dir()  # cache_dir: the default survived
    rendered = invoke(project, "cri.render")
    assert from_line(rendered.stdout) == f"FROM {BASE_IMAGE}"  # images.ubuntu from invoke.yaml
    assert "gleam-lang/gleam/releases" not in rendered.stdout  # gleam.source: none, from invoke.yaml
    env = invoke(project, "cri.render", env={"INVOKE_CRI_IMAGES_UBUNTU": "from-env:5"})
    assert from_line(env.stdout) == "FROM from-env:5"


@pytest.mark.engine
def test_a_user_task_with_prepare_as_a_pre_task(tmp_path: Path, engine_settings: dict[str, Any]) -> None:
    tasks_py = textwrap.dedent('''
        from invoke import Collection, task
        from cri_tasks.tasks import prepare

        @task(pre=[prepare])
        def ship(c):
            """Ship, once the runtime image is prepared."""
            print("shipping")

        ns = Collection(ship)
    ''')
    project = make_project(tmp_path / "proj", APP, settings=engine_settings)
    (project / "tasks.py").write_text(tasks_py)
    proc = invoke(project, "ship")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"app: built {image_name(project, engine_settings['repository'])}:")
    assert lines[-1] == "shipping"


# --- help and completion -----------------------------------------------------------------------


def parameters(task: Any) -> list[str]:
    return list(inspect.signature(task.body).parameters)[1:]  # after the Context


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def squeeze(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_every_parameter_of_every_task_has_help(task: Any) -> None:
    assert sorted(task.help) == sorted(parameters(task))
    assert all(text.strip() for text in task.help.values())
    assert (task.__doc__ or "").strip(), f"{task.name} has no docstring"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_invoke_help_of_a_task_shows_every_option_with_its_help(tmp_path: Path, task: Any) -> None:
    project = offline_project(tmp_path / "proj", "from cri_tasks import collection\nns = collection()\n")
    proc = invoke(project, "--help", task.name)
    assert proc.returncode == 0, proc.stderr
    for name in parameters(task):
        assert option(name) in proc.stdout
        assert squeeze(task.help[name]) in squeeze(proc.stdout), name


def test_cri_help_and_completion_list_the_options_of_prepare(tmp_path: Path) -> None:
    from cri_tasks.tasks import prepare

    helped = cri(tmp_path, "--help", "prepare")
    assert helped.returncode == 0, helped.stderr
    completed = cri(tmp_path, "--complete", "--", "prepare", "--")
    assert completed.returncode == 0, completed.stderr
    for name in parameters(prepare):
        assert option(name) in helped.stdout
        assert option(name) in completed.stdout.split()
    tasks = cri(tmp_path, "--complete", "--")
    assert sorted(tasks.stdout.split()) == sorted(t.name for t in TASKS)


@pytest.mark.parametrize("program", ["cri", "invoke"])
def test_completion_scripts_are_printed_for_both_programs(tmp_path: Path, program: str) -> None:
    project = offline_project(tmp_path / "proj", "from cri_tasks import collection\nns = collection()\n")
    if program == "cri":
        proc = cri(project, "--print-completion-script", "bash")
    else:
        proc = invoke(project, "--print-completion-script", "bash")
    assert proc.returncode == 0, proc.stderr
    assert f"_complete_{program}()" in proc.stdout
    assert f"complete -F _complete_{program} -o default {program}" in proc.stdout
    completed = invoke(project, "--complete", "--", "prepare", "--") if program == "invoke" else None
    if completed is not None:
        assert "--no-cache" in completed.stdout.split()


@pytest.mark.engine
def test_a_nox_session_deploys_the_example_and_logs_its_url(app: Path) -> None:
    (app / "noxfile.py").write_text(
        "import nox\nimport cri_tasks.nox as cri\n\n"
        "@nox.session(venv_backend='none')\n"
        "def ship(session):\n"
        "    (result,) = cri.deploy(session, setup='app')\n"
        "    session.log(f'live at {result.urls[0]}')\n"
    )
    proc = nox(app, "ship")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "nox > app: version 1 active" in out and "nox > live at http://127.0.0.1:" in out
    assert "nox > [app] front proxy now sends traffic to version 1" in out
