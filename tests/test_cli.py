"""The command line as users of invoke and docker expect it: ``cri``'s own options, one meaning per
short flag, check mode, ``--json`` documents, clean errors for whatever a user can cause."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import OUTPUT_SCHEMA, invoke, make_project, only
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_entry_points import OFFLINE, cri, nox, offline_project

from cri_tasks.cli import KEPT_CORE, program
from cri_tasks.config import load_settings, settings_from
from cri_tasks.errors import ConfigError
from cri_tasks.settings import DEFAULTS, Settings
from cri_tasks.tasks import SHORT_FLAGS, TASKS, collection

TASKS_PY = "from cri_tasks import collection\nns = collection()\n"

SLOW = """
zerops:
  - setup: app
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo {marker}
        - echo "step-$(id -un)" && sleep 30
"""

BUILT_APP = """
zerops:
  - setup: app
    build:
      base: gleam@1.5
      os: ubuntu
      buildCommands:
        - echo built > out.txt
      deployFiles: ./
    run:
      base: gleam@1.5
      os: ubuntu
      start: ./entrypoint.sh run
"""


# --- item 1: the cri program's own options ------------------------------------------------------


def test_cri_dash_f_before_the_task_is_the_zerops_yml_of_the_task(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    (project / "zerops.yml").rename(project / "other.yml")
    for flag in ("-f", "--file"):
        proc = cri(project, flag, "other.yml", "validate")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"{project / 'other.yml'}: valid, 1 setup(s)")


def test_cri_with_a_missing_zerops_yml_or_config_file_fails_and_names_it(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    missing = cri(project, "-f", "missing.yml", "validate")
    assert missing.returncode == 1 and "missing.yml" in missing.stderr and "Traceback" not in missing.stderr
    for args, env in ((["--config", "nope.yaml"], {}), ([], {"INVOKE_RUNTIME_CONFIG": "nope.yaml"})):
        proc = cri(project, *args, "validate", env=env)
        assert proc.returncode == 1, proc.stdout
        assert proc.stderr.strip().endswith("nope.yaml: no such file")


def test_cri_config_names_a_settings_file_read_after_invoke_yaml(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    (project / "ci.yaml").write_text("cri:\n  images:\n    ubuntu: from-config:3\n")
    proc = cri(project, "--config", "ci.yaml", "render")
    assert proc.returncode == 0, proc.stderr
    assert "FROM from-config:3" in proc.stdout


def test_cri_help_lists_only_the_core_options_that_mean_something(tmp_path: Path) -> None:
    proc = cri(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    core = proc.stdout.split("Core options:")[1].split("Subcommands:")[0]
    shown = sorted(word.split("=")[0].split("[")[0][2:] for word in core.split() if word.startswith("--"))
    assert shown == sorted([*KEPT_CORE, "config", "file"])


@pytest.mark.parametrize(
    "flag",
    [
        "--dry",
        "--echo",
        "--hide=both",
        "--pty",
        "--warn-only",
        "--prompt-for-sudo-password",
        "--write-pyc",
        "--debug",
        "-d",
    ],
)
def test_cri_refuses_invokes_run_options_before_doing_anything(tmp_path: Path, flag: str) -> None:
    project = offline_project(tmp_path / "proj")
    cache = project / ".cri"
    proc = cri(project, flag, "clean")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert not cache.exists()  # clean never ran


# --- item 2: one meaning per short flag ---------------------------------------------------------


def _names(arguments: Any) -> list[tuple[str, list[str]]]:
    return [(arg.name, [n for n in arg.names if len(n) == 1]) for arg in arguments]


def _task_arguments(task: Any) -> Any:
    fresh = copy.copy(task)
    fresh.help = dict(task.help)  # get_arguments() consumes the help dict
    return fresh.get_arguments()


def test_no_short_flag_means_two_things_across_tasks_and_cris_core_options() -> None:
    meaning: dict[str, set[str]] = {}
    for task in TASKS:
        for name, letters in _names(_task_arguments(task)):
            for letter in letters:
                meaning.setdefault(letter, set()).add(name.replace("-", "_"))
    for name, letters in _names(program().core_args()):
        for letter in letters:
            meaning.setdefault(letter, set()).add(name.replace("-", "_"))
    clashes = {letter: names for letter, names in meaning.items() if len(names) > 1}
    assert clashes == {}
    task_letters = {
        letter: name for task in TASKS for name, letters in _names(_task_arguments(task)) for letter in letters
    }
    assert task_letters == {v: k for k, v in SHORT_FLAGS.items() if k in task_letters.values()}


def test_the_short_flags_are_the_documented_ones(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj", TASKS_PY)
    logs = invoke(project, "--help", "logs")
    assert "-n INT, --tail=INT" in logs.stdout and "-f STRING, --file=STRING" in logs.stdout
    assert "  --follow " in logs.stdout and "  --target=STRING" in logs.stdout
    prepare = invoke(project, "--help", "prepare")
    assert "  --debug " in prepare.stdout and "  --force " in prepare.stdout
    assert "-s STRING, --setup=STRING" in prepare.stdout and "-j, --json" in prepare.stdout


# --- items 6 and 7: no traceback for anything a user can cause; unknown settings -------------------

SCALARS = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
    max_leaves=6,
)
KNOWN = sorted(DEFAULTS) + ["gleam", "zcli", "swarm"]
SETTINGS = st.dictionaries(st.sampled_from(KNOWN) | st.text(min_size=1, max_size=10), VALUES, max_size=4)


def _leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        name = f"{prefix}_{key}".upper() if prefix else key.upper()
        out.extend(_leaves(value, name) if isinstance(value, dict) else [name])
    return out


ENV_NAMES = ["INVOKE_CRI_" + name for name in _leaves(DEFAULTS)]


def _settled(fn: Any) -> Settings | ConfigError:
    """The settings, or the ConfigError that says what is wrong; anything else fails the test."""
    try:
        return fn()  # type: ignore[no-any-return]
    except ConfigError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)
        return exc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SETTINGS)
def test_any_collection_settings_give_settings_or_a_config_error(values: dict[str, Any]) -> None:
    _settled(lambda: settings_from(collection(**values).configuration()))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SETTINGS)
def test_any_invoke_yaml_gives_settings_or_a_config_error(tmp_path: Path, values: dict[str, Any]) -> None:
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    (folder / "invoke.yaml").write_text(yaml.safe_dump({"cri": values}))
    _settled(lambda: load_settings(folder))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(ENV_NAMES),
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
        max_size=4,
    )
)
def test_any_invoke_cri_variables_give_settings_or_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        _settled(lambda: load_settings(tmp_path))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"INVOKE_CRI_PARALLEL": "abc"}, "cri.parallel: expected a whole number of at least 1, got 'abc'"),
        ({"INVOKE_CRI_ZCLI_ENABLED": "maybe"}, "cri.zcli.enabled: expected true or false, got 'maybe'"),
        ({"images": ["a"]}, "cri.images: expected a mapping of run.os / build.os to an image"),
        ({"repositry": "x"}, 'cri.repositry: unknown setting (did you mean "repository"?)'),
        ({"imagse": {}}, 'cri.imagse: unknown setting (did you mean "images"?)'),
        ({"swarm": {"paralelism": 2}}, 'cri.swarm.paralelism: unknown setting (did you mean "parallelism"?)'),
    ],
)
@pytest.mark.parametrize("program", ["invoke", "cri"])
def test_bad_settings_are_a_message_naming_the_setting(
    tmp_path: Path, program: str, where: dict[str, Any], expected: str
) -> None:
    env = {k: v for k, v in where.items() if k.startswith("INVOKE_")}
    settings_ = {**OFFLINE, **{k: v for k, v in where.items() if not k.startswith("INVOKE_")}}
    project = offline_project(tmp_path / "proj", TASKS_PY if program == "invoke" else None, settings=settings_)
    proc = (invoke if program == "invoke" else cri)(project, "render", env=env)
    assert proc.returncode == 1, proc.stdout
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    as_json = (invoke if program == "invoke" else cri)(project, "render", "--json", env=env)
    (error,) = json.loads(as_json.stdout)["errors"]
    assert error["kind"] == "INVALID_CONFIG" and expected in error["message"]


@pytest.mark.engine
@pytest.mark.parametrize("args", [("prepare", "--force"), ("build",)], ids=["prepare", "build"])
def test_no_docker_cli_on_path_is_a_message(
    tmp_path: Path, engine_settings: dict[str, Any], args: tuple[str, ...]
) -> None:
    project = make_project(tmp_path / "proj", BUILT_APP, settings=engine_settings)
    bin_dir = tmp_path / "bin"  # python only: no docker
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    proc = invoke(project, *args, "--json", env={"PATH": str(bin_dir)})
    assert proc.returncode == 1
    assert "the docker CLI was not found on PATH" in proc.stderr and "Traceback" not in proc.stderr
    (error,) = json.loads(proc.stdout)["errors"]
    assert error["kind"] == "ENGINE_FAILED"


@pytest.mark.engine
def test_no_docker_cli_on_path_aborts_a_nox_session_with_the_message(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    project = offline_project(tmp_path / "proj", None, settings=engine_settings)
    (project / "noxfile.py").write_text(
        "import nox\nimport cri_tasks.nox as cri\n\n@nox.session(venv_backend='none')\n"
        "def image(session):\n    cri.prepare(session, force=True)\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    proc = nox(project, "image", env={"PATH": str(bin_dir)})
    assert proc.returncode == 1
    assert "Session image aborted: the docker CLI was not found on PATH" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- item 5: one JSON document on stdout for every task and every outcome -----------------------

SCHEMA = OUTPUT_SCHEMA
JSON_DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
DEAD_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/cri-test-docker.sock"}
NEEDS_SETUP = {"logs", "rollback"}


def checked(proc: Any, task: str) -> dict[str, Any]:
    """The one JSON document ``proc`` printed, validated against the schema in docs/."""
    doc = json.loads(proc.stdout)  # exactly one document: json.loads refuses anything after it
    jsonschema.validate(doc, SCHEMA)
    assert doc["task"] == task and doc["schema"] == 1
    assert "Traceback" not in proc.stderr
    return doc  # type: ignore[no-any-return]


def run_json(project: Path, task: str, *args: str, env: dict[str, str] | None = None, program: str = "invoke") -> Any:
    extra = ["--setup", "app"] if task in NEEDS_SETUP else []
    return (invoke if program == "invoke" else cri)(project, task, *extra, *args, "--json", env=env)


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_a_config_error_is_one_document_with_file_line_and_column(tmp_path: Path, task: str) -> None:
    project = offline_project(tmp_path / "proj", TASKS_PY)
    (project / "zerops.yml").write_text("zerops:\n  - setup: app\n    run:\n      os: beos\n")
    proc = run_json(project, task)
    assert proc.returncode == 1
    doc = checked(proc, task)
    assert doc["status"] == "failed" and doc["setups"] == []
    (error,) = doc["errors"]
    assert (error["kind"], error["line"], error["column"], error["path"]) == (
        "INVALID_CONFIG",
        4,
        11,
        "zerops[0].run.os",
    )
    assert error["file"] == "zerops.yml" and error["message"].startswith("expected one of")


@pytest.mark.parametrize("task", ["prepare", "build", "deploy", "status", "stop", "logs"])
def test_an_unreachable_engine_is_one_document_naming_the_command(tmp_path: Path, task: str) -> None:
    project = make_project(tmp_path / "proj", BUILT_APP, settings=OFFLINE)
    proc = run_json(project, task, env=DEAD_ENGINE)
    assert proc.returncode == 1
    doc = checked(proc, task)
    assert doc["status"] == "failed"
    kinds = {e["kind"] for e in doc["errors"]}
    assert kinds == {"ENGINE_FAILED"}, doc["errors"]
    assert all("Cannot connect to the Docker daemon" in e["message"] for e in doc["errors"])
    assert all(e["command"] and "docker" in e["command"] for e in doc["errors"] if task != "deploy")


@pytest.mark.parametrize("task", ["validate", "render", "clean"])
def test_the_offline_tasks_succeed_with_one_document(tmp_path: Path, task: str) -> None:
    project = offline_project(tmp_path / "proj", TASKS_PY)
    proc = run_json(project, task)
    assert proc.returncode == 0, proc.stderr
    doc = checked(proc, task)
    assert doc["status"] == "ok" and [s["setup"] for s in doc["setups"]] == ["app"]
    assert doc["errors"] == []


def test_an_expected_failure_without_a_zerops_word_is_kind_failed(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj", TASKS_PY)
    doc = checked(run_json(project, "rollback"), "rollback")
    assert doc["status"] == "failed" and doc["errors"][0]["kind"] == "FAILED"
    assert doc["errors"][0]["message"] == "[app] nothing deployed yet"


def test_cri_prints_a_document_for_an_error_before_the_task_runs(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    (project / "invoke.yaml").write_text("cri: [oops\n")
    proc = cri(project, "validate", "--json")
    assert proc.returncode == 1
    doc = checked(proc, "validate")
    assert doc["errors"][0]["kind"] == "INVALID_CONFIG" and "invoke.yaml" in doc["errors"][0]["message"]


def _schema_fields(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        out.update(node.get("properties", {}))
        for value in node.values():
            out |= _schema_fields(value)
    elif isinstance(node, list):
        for value in node:
            out |= _schema_fields(value)
    return out


def test_the_json_reference_page_names_every_field_status_and_task() -> None:
    page = JSON_DOC.read_text()
    missing = sorted(f for f in _schema_fields(SCHEMA) if f"`{f}`" not in page)
    assert missing == []
    from cri_tasks.output import DOCUMENT_STATUSES, SETUP_STATUSES

    assert [w for w in (*DOCUMENT_STATUSES, *SETUP_STATUSES) if f"`{w}`" not in page] == []
    assert [t.name for t in TASKS if f"`{t.name}`" not in page] == []
    assert SCHEMA["properties"]["status"]["enum"] == list(DOCUMENT_STATUSES)


# --- items 3 and 5 against the engine: check mode, every task's document, an interrupt ----------


@pytest.mark.engine
def test_check_mode_and_every_tasks_document_through_a_deploy(app: Path) -> None:
    check = run_json(app, "prepare", "--check")
    assert check.returncode == 2, check.stderr  # would build
    doc = checked(check, "prepare")
    assert doc["status"] == "would build" and only(doc)["status"] == "would build" and only(doc)["reasons"]
    assert invoke(app, "prepare", "--check").returncode == 2  # the same without --json
    deploy_check = run_json(app, "deploy", "--check")
    assert deploy_check.returncode == 2, deploy_check.stderr
    assert only(checked(deploy_check, "deploy"))["status"] == "would build"
    built = run_json(app, "prepare")
    assert built.returncode == 0, built.stderr
    assert only(checked(built, "prepare"))["status"] == "built"
    again = run_json(app, "prepare", "--check")
    assert again.returncode == 0, again.stderr
    assert checked(again, "prepare")["status"] == "ok" and only(checked(again, "prepare"))["status"] == "up to date"

    for task, expected in (
        ("build", "built"),
        ("deploy", "active"),
        ("deploy", "active"),
        ("status", "deployed"),
        ("logs", "read"),
        ("rollback", "active"),
        ("stop", "stopped"),
        ("clean", "forgotten"),
        ("status", "not deployed"),
    ):
        proc = run_json(app, task)
        assert proc.returncode == 0, (task, proc.stderr)
        doc = checked(proc, task)
        assert doc["status"] == "ok" and only(doc)["status"] == expected, (task, doc)
        if task == "rollback":
            assert only(doc)["version"] == 1
        if task == "deploy":  # what the deploy built is what a deploy now would use
            unchanged = run_json(app, "deploy", "--check")
            assert unchanged.returncode == 0, unchanged.stderr
            assert only(checked(unchanged, "deploy"))["status"] == "up to date"


@pytest.mark.engine
def test_an_interrupted_prepare_prints_the_interrupted_document(
    tmp_path: Path, engine_settings: dict[str, Any], unique: str
) -> None:
    project = make_project(tmp_path / "p", SLOW.format(marker=unique), settings=engine_settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "prepare", "--json"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cache = Path(str(engine_settings["cache_dir"]))
    deadline = time.monotonic() + 120
    while not any("step-zerops" in log.read_text(errors="replace") for log in (cache / "logs").rglob("prepare-*.log")):
        assert time.monotonic() < deadline and proc.poll() is None, "the build never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["status"] == "interrupted" and doc["errors"][0]["kind"] == "INTERRUPTED"
    assert "Traceback" not in err


# --- item 8: finding the project from a subfolder ---------------------------------------------


def test_invoke_from_a_subfolder_finds_zerops_yml_upward_and_says_which(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj", TASKS_PY)
    deep = project / "src" / "deep"
    deep.mkdir(parents=True)
    proc = invoke(deep, "validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{project / 'zerops.yml'}: valid")
    assert "using ../../zerops.yml" in proc.stderr
    here = invoke(project, "validate")
    assert "using" not in here.stderr


def test_the_upward_search_stops_at_the_projects_root(tmp_path: Path) -> None:
    outer = offline_project(tmp_path / "outer")  # a zerops.yml above the project: never used
    project = outer / "proj"
    project.mkdir()
    (project / "tasks.py").write_text(TASKS_PY)
    (project / "src").mkdir()
    proc = invoke(project / "src", "validate")
    assert proc.returncode == 1
    assert f"no zerops.yaml or zerops.yml in {project / 'src'} or the folders above it up to {project}" in proc.stderr


def test_cri_from_a_subfolder_stops_at_the_repository_root(tmp_path: Path) -> None:
    repo = offline_project(tmp_path / "repo")
    (repo / ".git").mkdir()
    (repo / "lib").mkdir()
    found = cri(repo / "lib", "render")
    assert found.returncode == 0, found.stderr
    assert "using ../zerops.yml" in found.stderr
    (tmp_path / "repo" / "zerops.yml").rename(tmp_path / "zerops.yml")  # above the repository
    missing = cri(repo / "lib", "render")
    assert missing.returncode == 1 and f"up to {repo}" in missing.stderr


# --- item 9: env files by dotenv's rules ----------------------------------------------------------

DOTENV_LINES = [
    "A=1",
    "B=value # a comment",
    'C="a\\nb"',
    "D='single # kept'",
    "export E=exported",
    "F = spaced ",
    "G=",
    'H=""',
    "I=${A}-ref",
    "# a comment",
    "",
    "   ",
    'J="multi\nline"',
    "K=a=b=c",
    'L="quoted" # after',
    'N="tab\\tand \\"quote\\""',
    "O=trailing   ",
    "P=x#not-a-comment",
]


@pytest.mark.parametrize("line", DOTENV_LINES)
def test_an_env_file_line_reads_as_dotenv_reads_it(tmp_path: Path, line: str) -> None:
    from dotenv import dotenv_values

    from cri_tasks.envvars import read_env_file

    path = tmp_path / "project.env"
    path.write_text(line + "\n")
    assert read_env_file(path) == dict(dotenv_values(path, interpolate=False))


def test_a_whole_env_file_reads_as_dotenv_reads_it(tmp_path: Path) -> None:
    from dotenv import dotenv_values

    from cri_tasks.envvars import read_env_file

    path = tmp_path / "project.env"
    path.write_text("\n".join(DOTENV_LINES) + "\n")
    assert read_env_file(path) == dict(dotenv_values(path, interpolate=False))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('A=1\nB="open\nC=3\n', 2, "cannot parse 'B=\"open' (expected NAME=VALUE; is a quote left open?)"),
        ("A=1\n\nBARE\n", 3, "BARE has no value (write BARE= for an empty one)"),
        ("A=1\n1BAD=x\n", 2, "'1BAD' is not a variable name"),
        ("# c\n\nM='it''s'\n", 3, "cannot parse \"M='it''s'\" (expected NAME=VALUE; is a quote left open?)"),
    ],
)
def test_a_malformed_env_file_line_is_named_with_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    from cri_tasks.envvars import read_env_file

    path = tmp_path / "project.env"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_env_file(path)
    assert str(caught.value) == f"{path}:{line}:1: {message}"


@pytest.mark.engine
def test_env_file_values_reach_the_container_as_dotenv_reads_them(app: Path) -> None:
    (app / "project.env").write_text("SUFFIX=\"two words\" # not part of it\nexport LITERAL='a # b'\n")
    text = (
        (app / "zerops.yml")
        .read_text()
        .replace(
            "      envVariables:\n        GREETING: hello\n",
            "      envVariables:\n        GREETING: hello\n        WITH_SUFFIX: ${SUFFIX}!\n        KEPT: ${LITERAL}\n",
        )
    )
    (app / "zerops.yml").write_text(text)
    proc = invoke(app, "deploy", "--json")
    assert proc.returncode == 0, proc.stderr
    container = only(json.loads(proc.stdout))["containers"][0]
    env = subprocess.run(["docker", "exec", container, "env"], capture_output=True, text=True, check=True).stdout
    assert "WITH_SUFFIX=two words!" in env.splitlines() and "KEPT=a # b" in env.splitlines()


# --- item 11: every task in Nox, with the options of the Invoke task ---------------------------


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_every_task_has_a_nox_helper_with_the_same_options(task: Any) -> None:
    import inspect

    import cri_tasks.nox as cri_nox

    helper = getattr(cri_nox, task.name)
    assert task.name in cri_nox.__all__
    options = set(inspect.signature(task.body).parameters) - {"c", "json"}
    keywords = set(inspect.signature(helper).parameters) - {"session", "settings", "options"}
    assert keywords == options


NOX_LIFECYCLE = """
import nox
import cri_tasks.nox as cri


@nox.session(venv_backend="none")
def lifecycle(session):
    cri.prepare(session, check=False)
    (built,) = cri.build(session)
    session.log(f"artifact {built.files} files")
    cri.deploy(session)
    cri.deploy(session, check=True)  # what the deploy built is what a deploy would use
    (entry,) = cri.status(session)
    session.log(f"status active {entry['active_version']}")
    ((source, text),) = cri.logs(session, setup="app")
    session.log(f"logs listening {'listening on 8000' in text}")
    cri.deploy(session)
    back = cri.rollback(session, setup="app")
    session.log(f"rolled back to {back.version}")
    (stopped,) = cri.stop(session)
    session.log(f"stopped {len(stopped['removed'])}")


@nox.session(venv_backend="none")
def would_build(session):
    cri.prepare(session, check=True)
"""


@pytest.mark.engine
def test_a_nox_session_runs_every_task(app: Path) -> None:
    (app / "noxfile.py").write_text(NOX_LIFECYCLE)
    check = nox(app, "would_build")
    assert check.returncode == 1
    assert "Session would_build aborted: the runtime image of app would be built" in check.stderr
    proc = nox(app, "lifecycle")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for line in ("nox > status active 1", "nox > logs listening True", "nox > rolled back to 1", "nox > app: removed"):
        assert line in out
    assert "Traceback" not in out


# --- item 10: interrupts stop the builds' process groups --------------------------------------

TWO_SLOW = """
zerops:
  - setup: one
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo {marker}-one
        - echo "step-$(id -un)" && sleep 60
  - setup: two
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo {marker}-two
        - echo "step-$(id -un)" && sleep 60
"""


def _buildx_processes(marker: str) -> dict[int, int]:
    """pid -> process group of the processes whose command line mentions ``marker`` and buildx."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                if marker in cmdline and "buildx" in cmdline:
                    found[int(entry)] = os.getpgid(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.engine
def test_ctrl_c_during_a_parallel_prepare_stops_each_builds_process_group(
    tmp_path: Path, engine_settings: dict[str, Any], unique: str
) -> None:
    project = make_project(tmp_path / "p", TWO_SLOW.format(marker=unique), settings={**engine_settings, "parallel": 2})
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "prepare"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cache = Path(str(engine_settings["cache_dir"]))
    repo = str(engine_settings["repository"])
    deadline = time.monotonic() + 180
    while sum("step-zerops" in log.read_text(errors="replace") for log in (cache / "logs").rglob("prepare-*.log")) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, "both builds should be running"
        time.sleep(0.1)
    running = _buildx_processes(repo)
    groups = set(running.values())
    assert len(groups) == 2  # one process group per build...
    assert os.getpgid(proc.pid) not in groups  # ...none of them the group of invoke itself
    assert all(pid in running for pid in groups)  # each led by the build's docker process
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _buildx_processes(repo) == {}  # nothing is left building
    for group in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)


# --- item 4: quiet, verbose, and a clock on a terminal -----------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_levels_choose_what_reaches_stderr() -> None:
    from cri_tasks.results import Progress, build_line

    for level, expected in (
        ("quiet", ""),
        ("normal", "[app] 1/2 step\n"),
        ("verbose", "[app] 1/2 step\n[app] | #5 0.1 hello\n"),
    ):
        stream = io.StringIO()
        progress = Progress(level, stream)
        progress("[app] 1/2 step")
        build_line(progress, "app", "#5 0.1 hello")
        progress.close()
        assert stream.getvalue() == expected, level


def test_on_a_terminal_a_long_step_shows_its_elapsed_time() -> None:
    from cri_tasks.results import Progress

    stream = FakeTerminal()
    progress = Progress("normal", stream)
    progress("[app] 1/1 sleep 3")
    time.sleep(3.3)
    progress("[app] built")
    progress.close()
    text = stream.getvalue()
    assert "\r\x1b[K[app] 1/1 sleep 3 (3 s)" in text or "\r\x1b[K[app] 1/1 sleep 3 (2 s)" in text
    assert text.endswith("[app] built\n")


def test_quiet_and_verbose_together_are_refused(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj", TASKS_PY)
    proc = invoke(project, "prepare", "-q", "-v")
    assert proc.returncode == 1 and "--quiet and --verbose" in proc.stderr


@pytest.mark.engine
def test_verbose_streams_buildkits_log_in_order_and_quiet_prints_nothing(
    tmp_path: Path, engine_settings: dict[str, Any], unique: str
) -> None:
    project = make_project(
        tmp_path / "p", SLOW.format(marker=unique).replace("sleep 30", "sleep 3"), settings=engine_settings
    )
    loud = invoke(project, "prepare", "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout.startswith("app: built ")  # results on stdout, progress on stderr
    streamed = [line.split(" | ", 1)[1] for line in loud.stderr.splitlines() if line.startswith("[app] | ")]
    assert any(unique in line for line in streamed)  # the command's own output came through
    headers: dict[str, int] = {}
    for n, line in enumerate(streamed):  # BuildKit prints a vertex's header before its output
        vertex = line.split(" ", 1)[0]
        if " [" in line and vertex not in headers:
            headers[vertex] = n
        elif len(line.split(" ", 2)) > 2 and line.split(" ", 2)[1].replace(".", "").isdigit():
            assert vertex in headers, line
    quiet = invoke(project, "prepare", "--force", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    as_json = invoke(project, "prepare", "-q", "-j")
    assert as_json.stderr == "" and json.loads(as_json.stdout)["status"] == "ok"


@pytest.mark.engine
def test_on_a_real_terminal_a_prepare_step_ticks(tmp_path: Path, engine_settings: dict[str, Any], unique: str) -> None:
    import pty

    project = make_project(
        tmp_path / "p", SLOW.format(marker=unique).replace("sleep 30", "sleep 4"), settings=engine_settings
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "prepare"], cwd=project, stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=120)
    os.close(leader)
    assert proc.returncode == 0, seen.decode(errors="replace")
    assert re.search(rb"\r\x1b\[K\[app\] 2/2 echo \"step-\$\(id -un\)\" && sleep 4 \(\d s\)", seen), seen
