"""The adapters without Docker: how each Invoke task's options (long and short flags, ``--json``,
``--check``, ``-q``/``-v``) become the call of :mod:`cri_tasks.api`, what it prints of the result
and with which exit code; the same for the Nox helpers; and the text and documents of the typed
results (:mod:`cri_tasks.task_results`) that every adapter prints.

The API is replaced by a recording fake returning typed results, so the whole path from the
command line to stdout runs in milliseconds; the real-engine tests cover what the API does.
"""

from __future__ import annotations

import copy
import json
import pickle
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import check_document
from invoke import Config, Exit, MockContext

from cri_tasks import api, tasks
from cri_tasks import nox as cri_nox
from cri_tasks.build_phase import BuildResult
from cri_tasks.cli import program
from cri_tasks.deploy_phase import DeployFailed, DeployResult
from cri_tasks.errors import CriError
from cri_tasks.probe import SwitchReport
from cri_tasks.results import PREPARING_RUNTIME_FAILED, PrepareResult, Progress
from cri_tasks.runtime_image import PrepareFailed
from cri_tasks.settings import Settings
from cri_tasks.task_results import (
    Built,
    Cleaned,
    DeployCheck,
    Deployed,
    Logs,
    Prepared,
    Rendered,
    Rollback,
    StatusReport,
    Stopped,
    TaskResult,
    Validation,
)
from cri_tasks.tasks import TASKS, WOULD_BUILD_EXIT, collection

ZEROPS_YML = """\
zerops:
  - setup: app
    build:
      base: gleam@1.5
      buildCommands: [echo hi]
      deployFiles: ./
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands: [echo a, echo b]
      start: ./run
  - setup: web
    run:
      base: gleam@1.5
      start: ./run
      mount: [files]
"""

BUILT = PrepareResult("app", "built", "repo/app:abc", "sha256:1", "abcdef", False, 1.23456, ".cri/logs/app.log")
WOULD = PrepareResult("web", "would build", None, None, "f00", False, 0.0, None, reasons=("run.base changed", "x"))
UP_TO_DATE = PrepareResult("api", "up to date", "repo/api:1", "sha256:2", "f11", True, 0.0004, None)
SWITCH = SwitchReport("http://127.0.0.1:8080/", 40, 0, 12.345, None)
ACTIVE = DeployResult("app", "ACTIVE", 3, "repo/app:v3", "repo/app:abc", ["http://127.0.0.1:8080"], SWITCH, 2.5, ["c1"])
ACTIVE_WEB = DeployResult("web", "ACTIVE", 1, "repo/web:v1", "repo/web:f", [], None, 1.0, [])
STATUS: list[dict[str, Any]] = [
    {
        "setup": "app",
        "active_version": 3,
        "runtime_image": "r",
        "versions": [1, 2, 3],
        "containers": [
            {"name": "c1", "status": "running", "health": "healthy", "version": "3", "image": "i"},
            {"name": "c2", "node": "n1", "status": "running", "health": None, "version": "3", "image": "i"},
        ],
        "urls": ["http://x"],
        "proxy": {"image": "p"},
        "node_states": {"n1": "ready", "n2": "down"},
    },
    {
        "setup": "web",
        "active_version": None,
        "runtime_image": None,
        "versions": [],
        "containers": [],
        "urls": [],
        "proxy": None,
    },
]


def built_results(root: Path) -> Built:
    return Built([BuildResult("app", root / "art", root / "tree", 12, 3.33333, ".cri/logs/app-build.log")])


# --- the fake API --------------------------------------------------------------------------------


@dataclass
class Call:
    function: str
    args: dict[str, Any]

    @property
    def settings(self) -> Settings:
        return self.args["settings"]  # type: ignore[no-any-return]

    @property
    def level(self) -> str | None:
        report = self.args.get("report")
        return report.level if isinstance(report, Progress) else None

    def without(self, *names: str) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if k not in ("settings", "report", *names)}


@dataclass
class FakeApi:
    """Every task function of :mod:`cri_tasks.api`, recording its arguments; ``returns`` says what
    each returns (a result, an exception to raise, or a function of the arguments)."""

    root: Path
    calls: list[Call] = field(default_factory=list)
    returns: dict[str, Any] = field(default_factory=dict)

    def __call__(self, function: str) -> Callable[..., Any]:
        def fake(file: Any = None, **kwargs: Any) -> Any:
            self.calls.append(Call(function, {"file": file, **kwargs}))
            value = self.returns[function]
            if isinstance(value, BaseException):
                raise value
            return value(file, **kwargs) if callable(value) and not isinstance(value, TaskResult) else value

        return fake

    @property
    def call(self) -> Call:
        (only,) = self.calls
        return only


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    (tmp_path / "zerops.yml").write_text(ZEROPS_YML)
    (tmp_path / ".git").mkdir()  # the project's root: the upward search for zerops.yml stops here
    (tmp_path / "app-build.log").write_text("step 1\nstep 2\n")
    monkeypatch.chdir(tmp_path)
    for task in TASKS:  # Invoke pops each option's help as it parses: later tests read it
        monkeypatch.setattr(task, "help", dict(task.help))
    fake_api = FakeApi(tmp_path)
    real_validate = api.validate
    fake_api.returns.update(
        validate=lambda file, setup=None, settings=None: real_validate(file, setup=setup),
        prepare=Prepared([BUILT, WOULD, UP_TO_DATE]),
        deploy=lambda file, check=False, **_: DeployCheck([BUILT, UP_TO_DATE]) if check else Deployed([ACTIVE]),
        rollback=Rollback(ACTIVE),
        build=built_results(tmp_path),
        status=StatusReport(STATUS),
        stop=Stopped([{"setup": "app", "removed": ["c1", "c2"]}]),
        clean=Cleaned([{"setup": "app", "forgotten": 2, "removed": ["img"]}]),
        render=Rendered({"app": "FROM x\nRUN y\n"}),
        logs=lambda file, setup, phase=None, follow=False, **_: (
            Logs(setup, [(str(tmp_path / "app-build.log"), "step 1\nstep 2\n")], log_file=tmp_path / "app-build.log")
            if phase
            else Logs(setup)
            if follow
            else Logs(setup, [("c1", "line1\nline2\n"), ("c2", "")])
        ),
    )
    for name in ("validate", "prepare", "deploy", "rollback", "build", "status", "stop", "clean", "render", "logs"):
        monkeypatch.setattr(api, name, fake_api(name))
    return fake_api


@dataclass
class Ran:
    code: int
    out: str
    err: str


def cri(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    """``cri ARGV`` in this process: the real parser, the real tasks, the fake API."""
    code = 0
    try:
        program().run(["cri", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


# --- Invoke tasks: options -> API arguments ------------------------------------------------------

PREPARE_DEFAULTS = {"file": None, "setup": None, "force": False, "no_cache": False, "explain": False, "debug": False}


@pytest.mark.parametrize(
    ("argv", "function", "expected"),
    [
        (["prepare"], "prepare", PREPARE_DEFAULTS),
        (["prepare", "-s", "app", "--force"], "prepare", {**PREPARE_DEFAULTS, "setup": "app", "force": True}),
        (["prepare", "--setup", "app"], "prepare", {**PREPARE_DEFAULTS, "setup": "app"}),
        (["prepare", "--no-cache"], "prepare", {**PREPARE_DEFAULTS, "force": True, "no_cache": True}),
        (["prepare", "--explain", "--debug"], "prepare", {**PREPARE_DEFAULTS, "explain": True, "debug": True}),
        (["prepare", "--check"], "prepare", {**PREPARE_DEFAULTS, "explain": True}),
        (["prepare", "-f", "zerops.yml"], "prepare", {**PREPARE_DEFAULTS, "file": "zerops.yml"}),
        (["validate", "-s", "web"], "validate", {"file": None, "setup": "web"}),
        (["render", "--file", "zerops.yml"], "render", {"file": "zerops.yml", "setup": None}),
        (["clean", "--images", "-s", "app"], "clean", {"file": None, "setup": "app", "images": True}),
        (["build", "-s", "app"], "build", {"file": None, "setup": "app"}),
        (["deploy"], "deploy", {"file": None, "setup": None, "check": False}),
        (["deploy", "--check", "-s", "app"], "deploy", {"file": None, "setup": "app", "check": True}),
        (["rollback", "-s", "app"], "rollback", {"file": None, "setup": "app", "version": None}),
        (["rollback", "-s", "app", "--version", "2"], "rollback", {"file": None, "setup": "app", "version": 2}),
        (["status", "-s", "web"], "status", {"file": None, "setup": "web"}),
        (["stop"], "stop", {"file": None, "setup": None}),
        (["logs", "-s", "app"], "logs", {"file": None, "setup": "app", "tail": 100, "follow": False, "phase": None}),
        (
            ["logs", "-s", "app", "-n", "5"],
            "logs",
            {"file": None, "setup": "app", "tail": 5, "follow": False, "phase": None},
        ),
        (
            ["logs", "-s", "app", "--tail", "7", "--follow"],
            "logs",
            {"file": None, "setup": "app", "tail": 7, "follow": True, "phase": None},
        ),
        (
            ["logs", "-s", "app", "--prepare"],
            "logs",
            {"file": None, "setup": "app", "tail": 100, "follow": False, "phase": "prepare"},
        ),
        (
            ["logs", "-s", "app", "--build", "--follow"],
            "logs",
            {"file": None, "setup": "app", "tail": 100, "follow": True, "phase": "build"},
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_each_tasks_options_become_the_api_calls_arguments(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str], function: str, expected: dict[str, Any]
) -> None:
    ran = cri(capsys, *argv)
    assert ran.code in (0, WOULD_BUILD_EXIT), ran.err
    assert fake.call.function == function
    assert fake.call.without() == expected


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["deploy"], "local"),
        (["deploy", "--target", "swarm"], "swarm"),
        (["rollback", "-s", "app", "--target", "swarm"], "swarm"),
        (["status", "--target", "swarm"], "swarm"),
        (["stop", "--target", "swarm"], "swarm"),
        (["logs", "-s", "app", "--target", "swarm"], "swarm"),
    ],
)
def test_target_is_the_setting_cri_target_of_the_call(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str], target: str
) -> None:
    assert cri(capsys, *argv).code == 0
    assert fake.call.settings.target == target


@pytest.mark.parametrize(
    ("argv", "file", "setting"),
    [
        (["-f", "zerops.yml", "validate"], None, "zerops.yml"),  # cri's core -f: the file of every task
        (["validate", "-f", "zerops.yml"], "zerops.yml", "zerops.yml"),
        (["validate"], None, None),
    ],
)
def test_the_file_reaches_the_api_as_argument_and_setting(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str], file: str | None, setting: str | None
) -> None:
    assert cri(capsys, *argv).code == 0
    assert fake.call.args["file"] == file and fake.call.settings.file == setting


@pytest.mark.parametrize("task", ["prepare", "build", "deploy", "rollback"])
@pytest.mark.parametrize(
    ("flags", "level"),
    [([], "normal"), (["-q"], "quiet"), (["--quiet"], "quiet"), (["-v"], "verbose"), (["--verbose"], "verbose")],
)
def test_quiet_and_verbose_choose_the_progress_level(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], task: str, flags: list[str], level: str
) -> None:
    ran = cri(capsys, task, *(["-s", "app"] if task == "rollback" else []), *flags)
    assert ran.code == 0, ran.err
    assert fake.call.level == level
    assert (ran.out == "") == (level == "quiet")  # quiet: the exit code tells, no result text


@pytest.mark.parametrize("task", ["prepare", "build", "deploy", "rollback"])
def test_quiet_and_verbose_together_stop_before_the_api(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], task: str
) -> None:
    ran = cri(capsys, task, "-s", "app", "-q", "-v")
    assert ran.code == 1 and fake.calls == []
    assert ran.err == "--quiet and --verbose ask for opposite things: give one\n"


@pytest.mark.parametrize(
    ("argv", "would", "code"),
    [
        (["prepare", "--check"], True, WOULD_BUILD_EXIT),
        (["prepare", "--check"], False, 0),
        (["prepare", "--explain"], True, 0),
        (["deploy", "--check"], True, WOULD_BUILD_EXIT),
        (["deploy", "--check"], False, 0),
    ],
)
@pytest.mark.parametrize("json_flag", [[], ["--json"], ["-j"]])
def test_check_exits_2_when_an_image_would_be_built(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str], would: bool, code: int, json_flag: list[str]
) -> None:
    results = [BUILT, WOULD] if would else [BUILT, UP_TO_DATE]
    fake.returns["prepare"] = Prepared(results)
    fake.returns["deploy"] = DeployCheck(results)
    ran = cri(capsys, *argv, *json_flag)
    assert ran.code == code, ran.err
    if json_flag:
        doc = check_document(json.loads(ran.out))
        assert doc["status"] == ("would build" if would else "ok")
        assert doc["task"] == argv[0]


# --- Invoke tasks: what they print ---------------------------------------------------------------

TEXT = {
    "prepare": "app: built repo/app:abc sha256:1\nweb: would build\n  - run.base changed\n  - x\n"
    "api: up to date repo/api:1 sha256:2\n",
    "deploy": "app: version 3 active (repo/app:v3)\n  switch: 0 failed of 40 requests, longest gap 12 ms\n"
    "  http://127.0.0.1:8080\n",
    "rollback": "app: version 3 active (repo/app:v3)\n  switch: 0 failed of 40 requests, longest gap 12 ms\n"
    "  http://127.0.0.1:8080\n",
    "status": "app: active version 3 (kept: 1, 2, 3); runtime image r\n  c1: running, healthy (version 3)\n"
    "  c2 on n1: running (version 3)\n  swarm nodes not ready: n2\n  http://x\n"
    "web: active version - (kept: -); runtime image -\n",
    "stop": "app: removed 2 container(s)\n",
    "clean": "app: forgot 2 record(s), removed img\n",
    "render": "FROM x\nRUN y\n",
    "logs": "==> c1 <==\nline1\nline2\n==> c2 <==\n",
}


@pytest.mark.parametrize("task", sorted(TEXT))
def test_each_task_prints_its_results_text(fake: FakeApi, capsys: pytest.CaptureFixture[str], task: str) -> None:
    ran = cri(capsys, task, *(["-s", "app"] if task in ("logs", "rollback") else []))
    assert ran.code == 0, ran.err
    assert ran.out == TEXT[task]
    assert ran.err == ""


def test_build_prints_each_artifact(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert cri(capsys, "build").out == f"app: built, 12 file(s) in {fake.root / 'art'}\n"


def test_validate_prints_its_setups_and_its_warnings_on_stderr(
    fake: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cri(capsys, "validate")
    assert ran.out == (
        f"{fake.root / 'zerops.yml'}: valid, 2 setup(s)\n"
        "  app: run.os=ubuntu run.base=gleam@1.5 prepareCommands=2 buildCommands=1\n"
        "  web: run.os=alpine run.base=gleam@1.5 prepareCommands=0 buildCommands=0\n"
    )
    assert ran.err == (
        "zerops.yml:16:7: warning: zerops[1].run.mount: has no local meaning (a Zerops shared storage mount); ignored\n"
    )
    as_json = cri(capsys, "validate", "--json")
    assert as_json.err == ""  # the warnings are in the document
    (warning,) = json.loads(as_json.out)["warnings"]
    assert (warning["kind"], warning["line"], warning["column"]) == ("WARNING", 16, 7)


def test_a_phase_log_is_printed_as_it_is_with_its_path_on_stderr(
    fake: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cri(capsys, "logs", "-s", "app", "--build")
    assert ran.out == "step 1\nstep 2\n"
    assert ran.err == f"# {fake.root / 'app-build.log'}\n"


@pytest.mark.parametrize(
    "task", ["validate", "prepare", "render", "clean", "logs", "build", "deploy", "rollback", "status", "stop"]
)
@pytest.mark.parametrize("json_flag", ["--json", "-j"])
def test_json_prints_the_results_document_and_nothing_else(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], task: str, json_flag: str
) -> None:
    ran = cri(capsys, task, *(["-s", "app"] if task in ("logs", "rollback") else []), json_flag)
    assert ran.code == 0, ran.err
    doc = check_document(json.loads(ran.out))
    assert doc["task"] == task and doc["errors"] == []
    if task != "validate":  # validate's result is the real one, made anew by each call
        expected = fake.returns[task]
        if not isinstance(expected, TaskResult):
            expected = expected(None, setup="app")
        assert ran.out == json.dumps(expected.as_json(), indent=2) + "\n"


def test_json_with_quiet_still_prints_the_document(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    ran = cri(capsys, "prepare", "-q", "--json")
    assert check_document(json.loads(ran.out))["task"] == "prepare"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["logs"], "logs needs --setup NAME"),
        (["rollback"], "rollback needs --setup NAME"),
        (["logs", "-s", "app", "--follow", "--json"], "logs --follow streams text; it has no --json"),
    ],
)
def test_what_a_task_refuses_before_calling_the_api(
    fake: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    ran = cri(capsys, *argv)
    assert ran.code == 1 and fake.calls == []
    assert ran.err == message + "\n"
    if "--json" in argv:
        (error,) = check_document(json.loads(ran.out))["errors"]
        assert (error["kind"], error["message"]) == ("FAILED", message)


def test_logs_of_a_setup_that_runs_nothing_is_an_error(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.returns["logs"] = Logs("app")
    ran = cri(capsys, "logs", "-s", "app")
    assert ran.code == 1 and ran.err == "[app] nothing runs: deploy it first\n"


def test_a_failed_setup_is_one_document_with_every_setups_outcome(
    fake: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = PrepareResult("web", PREPARING_RUNTIME_FAILED, None, None, "f", False, 0.5, None, error="boom")
    fake.returns["prepare"] = PrepareFailed(
        [CriError("[web] PREPARING_RUNTIME_FAILED: boom", status=PREPARING_RUNTIME_FAILED)], [BUILT, failed]
    )
    text = cri(capsys, "prepare")
    assert (text.code, text.out, text.err) == (1, "", "[web] PREPARING_RUNTIME_FAILED: boom\n")
    doc = check_document(json.loads(cri(capsys, "prepare", "--json").out))
    assert doc["status"] == "failed"
    assert [(s["setup"], s["status"], s["error"]) for s in doc["setups"]] == [
        ("app", "built", None),
        ("web", "failed", PREPARING_RUNTIME_FAILED),
    ]
    assert [e["kind"] for e in doc["errors"]] == [PREPARING_RUNTIME_FAILED]


def test_an_interrupt_exits_130_with_the_interrupted_document(
    fake: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.returns["deploy"] = KeyboardInterrupt()
    ran = cri(capsys, "deploy", "--json")
    assert ran.code == 130
    doc = check_document(json.loads(ran.out))
    assert doc["status"] == "interrupted" and doc["errors"][0]["kind"] == "INTERRUPTED"


# --- the task bodies with Invoke's MockContext ---------------------------------------------------


def mock_context() -> MockContext:
    return MockContext(config=Config(overrides=collection().configuration()))


def test_a_task_body_takes_a_mock_context_and_check_raises_exit_2(
    fake: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as exited:
        tasks.prepare(mock_context(), setup="app", check=True)
    assert exited.value.code == WOULD_BUILD_EXIT
    assert fake.call.without() == {**PREPARE_DEFAULTS, "setup": "app", "explain": True}
    assert capsys.readouterr().out == TEXT["prepare"]


def test_a_task_body_turns_a_cri_error_into_exit_1_with_the_message(fake: FakeApi) -> None:
    fake.returns["stop"] = CriError("[app] the engine said no")
    with pytest.raises(Exit) as exited:
        tasks.stop(mock_context(), target="swarm")
    assert (exited.value.code, exited.value.message) == (1, "[app] the engine said no")
    assert fake.call.settings.target == "swarm"


def test_the_settings_of_the_context_reach_the_api(fake: FakeApi) -> None:
    context = MockContext(config=Config(overrides=collection(repository="r.example/team").configuration()))
    tasks.render(context)
    assert fake.call.settings.repository == "r.example/team"


# --- Nox helpers ---------------------------------------------------------------------------------


class SessionQuit(Exception):
    pass


@dataclass
class FakeSession:
    """What the helpers use of ``nox.Session``: its log, its warnings, and ``error``, which ends
    the session (nox raises too)."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def log(self, message: str) -> None:
        self.events.append(("log", message))

    def warn(self, message: str) -> None:
        self.events.append(("warn", message))

    def error(self, message: str) -> None:
        self.events.append(("error", message))
        raise SessionQuit(message)

    def logged(self) -> list[str]:
        return [message for kind, message in self.events if kind == "log"]


def nox_call(helper: str, **kwargs: Any) -> tuple[FakeSession, Any]:
    session = FakeSession()
    try:
        returned = getattr(cri_nox, helper)(session, **kwargs)
    except SessionQuit:
        returned = None
    return session, returned


@pytest.mark.parametrize(
    ("helper", "kwargs", "expected"),
    [
        ("prepare", {}, PREPARE_DEFAULTS),
        (
            "prepare",
            {"setup": "app", "no_cache": True},
            {**PREPARE_DEFAULTS, "setup": "app", "force": True, "no_cache": True},
        ),
        ("prepare", {"check": True}, {**PREPARE_DEFAULTS, "explain": True}),
        ("prepare", {"file": "zerops.yml", "debug": True}, {**PREPARE_DEFAULTS, "file": "zerops.yml", "debug": True}),
        ("deploy", {"check": True}, {"file": None, "setup": None, "check": True}),
        ("rollback", {"setup": "app"}, {"file": None, "setup": "app", "version": None}),
        ("rollback", {"setup": "app", "version": 0}, {"file": None, "setup": "app", "version": None}),
        ("rollback", {"setup": "app", "version": 4}, {"file": None, "setup": "app", "version": 4}),
        ("logs", {"setup": "app"}, {"file": None, "setup": "app", "tail": 100, "follow": False, "phase": None}),
        (
            "logs",
            {"setup": "app", "tail": 5, "follow": True},
            {"file": None, "setup": "app", "tail": 5, "follow": True, "phase": None},
        ),
        (
            "logs",
            {"setup": "app", "prepare": True},
            {"file": None, "setup": "app", "tail": 100, "follow": False, "phase": "prepare"},
        ),
        (
            "logs",
            {"setup": "app", "build": True},
            {"file": None, "setup": "app", "tail": 100, "follow": False, "phase": "build"},
        ),
        ("clean", {"images": True}, {"file": None, "setup": None, "images": True}),
        ("status", {"setup": "web"}, {"file": None, "setup": "web"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_nox_helpers_keywords_become_the_api_calls_arguments(
    fake: FakeApi, helper: str, kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    nox_call(helper, **kwargs)
    assert fake.call.without() == expected


@pytest.mark.parametrize("helper", ["deploy", "rollback", "status", "stop", "logs"])
def test_the_nox_keyword_target_is_the_setting(fake: FakeApi, helper: str) -> None:
    nox_call(helper, **({"setup": "app"} if helper in ("rollback", "logs") else {}), target="swarm")
    assert fake.call.settings.target == "swarm"


def test_nox_settings_keywords_are_deep_merged_and_single_settings_win(fake: FakeApi) -> None:
    nox_call("render", settings={"repository": "r.example/a", "gleam": {"source": "none"}}, repository="r.example/b")
    assert fake.call.settings.repository == "r.example/b"
    assert fake.call.settings.gleam_source == "none"


@pytest.mark.parametrize(
    ("kwargs", "level"), [({}, "normal"), ({"quiet": True}, "quiet"), ({"verbose": True}, "verbose")]
)
def test_nox_quiet_and_verbose_choose_the_progress_level_of_nox_log(
    fake: FakeApi, kwargs: dict[str, Any], level: str
) -> None:
    session, _ = nox_call("build", **kwargs)
    assert fake.call.level == level
    fake.call.args["report"]("[app] 1/1 echo hi")
    assert (("log", "[app] 1/1 echo hi") in session.events) == (level != "quiet")


def test_nox_quiet_and_verbose_together_end_the_session(fake: FakeApi) -> None:
    session, _ = nox_call("prepare", quiet=True, verbose=True)
    assert session.events == [("error", "quiet and verbose ask for opposite things: give one")]
    assert fake.calls == []


@pytest.mark.parametrize("helper", ["prepare", "deploy"])
def test_nox_check_fails_the_session_naming_what_would_be_built(fake: FakeApi, helper: str) -> None:
    fake.returns["deploy"] = DeployCheck([BUILT, WOULD])
    session, _ = nox_call(helper, check=True)
    assert session.events[-1] == ("error", "the runtime image of web would be built")
    fake.returns["prepare"] = Prepared([BUILT, UP_TO_DATE])
    fake.returns["deploy"] = DeployCheck([BUILT, UP_TO_DATE])
    session, returned = nox_call(helper, check=True)
    assert [kind for kind, _ in session.events] == ["log", "log"] and list(returned) == [BUILT, UP_TO_DATE]


def test_a_cri_error_ends_the_nox_session_with_its_message(fake: FakeApi) -> None:
    fake.returns["deploy"] = DeployFailed([CriError("[web] DEPLOY_FAILED: nope", status="DEPLOY_FAILED")], [ACTIVE])
    session, _ = nox_call("deploy")
    assert session.events == [("error", "[web] DEPLOY_FAILED: nope")]


def test_nox_logs_the_text_the_command_line_prints(fake: FakeApi) -> None:
    for helper, kwargs in (
        ("prepare", {}),
        ("deploy", {}),
        ("rollback", {"setup": "app"}),
        ("status", {}),
        ("stop", {}),
        ("clean", {}),
    ):
        session, _ = nox_call(helper, **kwargs)
        assert "\n".join(session.logged()) + "\n" == TEXT[helper]


def test_nox_logs_a_dockerfile_or_a_log_as_one_block_under_its_title(fake: FakeApi) -> None:
    session, _ = nox_call("render")
    assert session.logged() == ["Dockerfile of setup app:\nFROM x\nRUN y\n"]
    session, _ = nox_call("logs", setup="app")
    assert session.logged() == ["==> c1 <==\nline1\nline2\n", "==> c2 <==\n"]
    session, _ = nox_call("logs", setup="app", prepare=True)
    assert session.logged() == [f"==> {fake.root / 'app-build.log'} <==\nstep 1\nstep 2\n"]


def test_nox_validate_warns_and_logs_its_setups(fake: FakeApi) -> None:
    session, result = nox_call("validate", setup="web")
    assert session.events == [
        (
            "warn",
            "zerops.yml:16:7: warning: zerops[1].run.mount: has no local meaning "
            "(a Zerops shared storage mount); ignored",
        ),
        ("log", f"{fake.root / 'zerops.yml'}: valid, 1 setup(s)"),
        ("log", "  web: run.os=alpine run.base=gleam@1.5 prepareCommands=0 buildCommands=0"),
    ]
    assert isinstance(result, Validation) and result.project.setup_names() == ["web"]


def test_nox_helpers_return_what_the_api_returned(fake: FakeApi) -> None:
    """The documented return values: lists of per-setup results, the rolled-back version."""
    (built,) = nox_call("build")[1]
    assert built.files == 12
    (entry,) = nox_call("stop")[1]
    assert entry["removed"] == ["c1", "c2"]
    back = nox_call("rollback", setup="app")[1]
    assert (back.version, back.urls, back.status) == (3, ["http://127.0.0.1:8080"], "ACTIVE")
    ((source, text), _) = nox_call("logs", setup="app")[1]
    assert (source, text) == ("c1", "line1\nline2\n")
    assert nox_call("render")[1]["app"] == "FROM x\nRUN y\n"


# --- the results themselves ----------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_every_tasks_api_function_returns_a_typed_result_named_after_it(task: Any) -> None:
    returned = typing.get_type_hints(getattr(api, task.name))["return"]
    for result_type in typing.get_args(returned) or (returned,):
        assert issubclass(result_type, TaskResult) and result_type.task == task.name


def test_every_result_reads_as_what_the_api_returned_before_it_had_a_type(tmp_path: Path) -> None:
    assert Prepared([BUILT]) == [BUILT] and Deployed([ACTIVE])[0].version == 3
    assert Rendered({"app": "x"}) == {"app": "x"} and StatusReport(STATUS)[0]["active_version"] == 3
    assert Logs("app", [("c1", "t")]) == [("c1", "t")] and built_results(tmp_path)[0].files == 12
    back = Rollback(ACTIVE)
    assert (back.setup, back.version, back.image) == ("app", 3, "repo/app:v3")
    assert copy.copy(back) == back and pickle.loads(pickle.dumps(back)) == back
    with pytest.raises(AttributeError):
        back.no_such_field  # noqa: B018


def test_the_document_status_says_would_build_for_prepare_and_the_deploy_check_only() -> None:
    assert Prepared([BUILT, WOULD]).document_status() == "would build"
    assert DeployCheck([WOULD]).as_json()["status"] == "would build"
    assert Prepared([BUILT, UP_TO_DATE]).as_json()["status"] == "ok"
    assert Prepared([BUILT, WOULD]).would_build() == ["web"]
    assert Deployed([ACTIVE]).as_json()["status"] == "ok"


def test_entries_take_the_documents_words_in_their_fixed_order(tmp_path: Path) -> None:
    """The key order is what scripts diff; every entry ends with ``error``."""
    cases: list[tuple[TaskResult, list[str]]] = [
        (
            Prepared([WOULD]),
            ["setup", "status", "image", "image_id", "fingerprint", "cached", "seconds", "log", "reasons", "error"],
        ),
        (
            Deployed([ACTIVE]),
            [
                "setup",
                "status",
                "version",
                "image",
                "runtime_image",
                "urls",
                "switch",
                "seconds",
                "containers",
                "error",
            ],
        ),
        (built_results(tmp_path), ["setup", "status", "files", "seconds", "artifact", "log", "error"]),
        (Rendered({"app": "x"}), ["setup", "status", "dockerfile", "error"]),
        (
            Cleaned([{"setup": "app", "forgotten": 1, "removed": []}]),
            ["setup", "forgotten", "removed", "status", "error"],
        ),
        (Stopped([{"setup": "app", "removed": []}]), ["setup", "removed", "status", "error"]),
        (
            StatusReport(STATUS[1:]),
            ["setup", "active_version", "runtime_image", "versions", "containers", "urls", "proxy", "status", "error"],
        ),
        (Logs("app", [("c1", "t")]), ["setup", "status", "sources", "error"]),
    ]
    for result, keys in cases:
        doc = check_document(result.as_json())
        assert list(doc) == ["schema", "task", "status", "setups", "errors", "warnings"]
        (entry,) = doc["setups"]
        assert list(entry) == keys, result.task
    assert Deployed([ACTIVE]).as_json()["setups"][0]["status"] == "active"
    assert StatusReport(STATUS).as_json()["setups"][1]["status"] == "not deployed"


def test_rendering_several_setups_separates_them_under_a_header() -> None:
    rendered = Rendered({"app": "FROM x\nRUN y\n", "web": "FROM z\n"})
    assert rendered.lines() == ["# ---- setup app ----", "FROM x\nRUN y", "\n# ---- setup web ----", "FROM z"]
    assert Rendered({"app": "FROM x\n"}).lines() == ["FROM x"]
