"""The one build path without an engine: BuildKit logs captured from real builds
(tests/fixtures/buildkit, see cases.py there) fed through :class:`cri_tasks.buildx.Follower` as
buildx would print them: the progress lines, the step -> zerops.yml command map, the log file,
and each phase's classification of a failure, message for message."""

from __future__ import annotations

import importlib.util
import re
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cri_tasks import build_phase, buildlog, buildx, dockerfile, engine, runtime_build
from cri_tasks.dockerfile import exec_form, with_build_env
from cri_tasks.errors import EngineError, Location, StepFailed
from cri_tasks.logfiles import LogFile
from cri_tasks.model import Command

FIXTURES = Path(__file__).parent / "fixtures" / "buildkit"
ARGV = ["docker", "buildx", "build", "--progress", "plain", "--file", "ctx/Dockerfile", "ctx"]


def _cases() -> Any:
    spec = importlib.util.spec_from_file_location("buildkit_cases", FIXTURES / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CASES = {case.name: case for case in _cases().CASES}


def _commands(field: str, texts: tuple[str, ...], first_line: int) -> list[Command]:
    return [
        Command(text, f"zerops[0].{field}[{i}]", Location("zerops.yml", first_line + i, 11))
        for i, text in enumerate(texts)
    ]


def _steps(name: str) -> tuple[buildx.Steps, dict[str, list[Command]]]:
    """The step map each phase builds for the case's Dockerfile, as the phase builds it."""
    case = CASES[name]
    text = (FIXTURES / f"{name}.Dockerfile").read_text()
    assert text == case.dockerfile(), f"{name}.Dockerfile was captured from another definition: run cases.py"
    if not case.is_build_phase:
        commands = {"run.prepareCommands": _commands("run.prepareCommands", case.prepare, 16)}
        return runtime_build._steps(text, commands["run.prepareCommands"]), commands
    section = SimpleNamespace(
        prepare_commands=_commands("build.prepareCommands", case.prepare, 6),
        build_commands=_commands("build.buildCommands", case.build, 10),
    )
    commands = {"build.prepareCommands": section.prepare_commands, "build.buildCommands": section.build_commands}
    return build_phase._steps(text, section), commands  # type: ignore[arg-type]


class Shown:
    """A reporter that keeps what it is shown, and the whole log when ``verbose``."""

    def __init__(self, verbose: bool = False) -> None:
        self.lines: list[str] = []
        self.log: list[str] = []
        self.verbose = verbose

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def build_line(self, setup: str, line: str) -> None:
        if self.verbose:
            self.log.append(f"[{setup}] | {line}")


def _follow(
    name: str, tmp_path: Path, *, report: Any, other_steps: str | None = "runtime"
) -> tuple[buildx.Follower, list[str]]:
    steps, _ = _steps(name)
    lines = (FIXTURES / f"{name}.log").read_text().splitlines()
    with LogFile(tmp_path / f"{name}.log") as log:
        follower = buildx.Follower("app", steps, log, report=report, other_steps=other_steps)
        for line in lines:
            follower(line)
    return follower, lines


def _failed(name: str, tmp_path: Path, other_steps: str | None = "runtime") -> buildx.Failed:
    follower, lines = _follow(name, tmp_path, report=Shown(), other_steps=other_steps)
    return follower.failed(lines, ARGV)


# -- the log's grammar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("#9 [5/7] RUN x", ("9", "", 5, 7, "RUN x")),
        ("#9 [ 5/12] RUN x", ("9", "", 5, 12, "RUN x")),
        ("#14 [build 5/6] RUN --mount=type=secret x", ("14", "build", 5, 6, "RUN --mount=type=secret x")),
        ("#3 [toolchain  2/10] COPY a b", ("3", "toolchain", 2, 10, "COPY a b")),
        ("#3 [linux/amd64 build 2/4] WORKDIR /x", ("3", "build", 2, 4, "WORKDIR /x")),
    ],
)
def test_a_step_header_gives_its_vertex_stage_step_and_instruction(line: str, expected: tuple[Any, ...]) -> None:
    header = buildlog.header(line)
    assert header is not None
    assert (header.vertex, header.stage, header.step, header.total, header.instruction) == expected


@pytest.mark.parametrize(
    "line",
    [
        "#1 [internal] load build definition from Dockerfile",
        "#9 0.453 [1/2] output",
        "#9 DONE 0.5s",
        '#0 building with "default" instance using docker driver',
        "",
    ],
)
def test_other_lines_are_no_step_header(line: str) -> None:
    assert buildlog.header(line) is None


def test_a_header_shown_again_is_not_a_new_step() -> None:
    tracker = buildlog.Tracker()
    assert tracker.feed("#9 [build 3/7] RUN a") is not None
    tracker.feed("#9 0.1 out")
    assert tracker.feed("#9 [build 3/7] RUN a") is None


# -- one extraction of a Dockerfile's steps ----------------------------------------------------


def test_a_single_unnamed_stage_has_its_steps_under_no_name() -> None:
    text = (FIXTURES / "runtime-success.Dockerfile").read_text()
    assert dockerfile.steps(text) == {
        "": [
            "FROM cri-local/debian:bookworm",
            "RUN mkdir -p /var/www /home/zerops && echo default runtime ready",
            "WORKDIR /home/zerops",
            "COPY files/ /home/zerops/",
            f"RUN {exec_form('echo hello from prepare')}",
            f"RUN {exec_form('ls -A /home/zerops | wc -l')}",
            "WORKDIR /var/www",
        ]
    }


def test_stages_number_their_own_steps_and_from_an_earlier_stage_is_none() -> None:
    text = (FIXTURES / "build-command-fails.Dockerfile").read_text()
    stages = dockerfile.steps(text)
    assert list(stages) == ["toolchain", "build", "artifact"]
    assert len(stages["toolchain"]) == 5 and stages["toolchain"][0] == "FROM cri-local/debian:bookworm AS toolchain"
    assert stages["build"][0] == "RUN rm -rf /build/source && mkdir -p /build/source"  # FROM toolchain: no step
    assert stages["artifact"] == ["FROM scratch AS artifact", "COPY --from=build /build/source/ /"]


def test_unnamed_stages_comments_and_continuation_lines() -> None:
    text = (
        "# syntax comment\nARG X=1\nFROM a\nRUN one \\\n  && RUN-not-a-step \\\n# a comment inside\n"
        "  COPY this is still the RUN\nFROM --platform=linux/amd64 b AS second\nadd x y\nFROM stage-0\n"
    )
    assert dockerfile.steps(text) == {
        "stage-0": ["FROM a", "RUN one \\"],
        "second": ["FROM --platform=linux/amd64 b AS second", "add x y"],
        "stage-2": ["FROM stage-0"],
    }


# -- progress lines and the log ----------------------------------------------------------------


RUNTIME_PROGRESS = [
    "[app] runtime: RUN mkdir -p /var/www /home/zerops && echo default runtime ready",
    "[app] runtime: COPY files/ /home/zerops/",
    "[app] 1/2 echo hello from prepare",
    "[app] 2/2 ls -A /home/zerops | wc -l",
]


def test_a_runtime_build_shows_its_own_steps_and_each_prepare_command(tmp_path: Path) -> None:
    shown = Shown()
    follower, lines = _follow("runtime-success", tmp_path, report=shown)
    assert shown.lines == RUNTIME_PROGRESS
    assert (tmp_path / "runtime-success.log").read_text() == "".join(line + "\n" for line in lines)
    assert follower.tracker.failed_step is None


def test_a_cached_rebuild_shows_the_same_steps_in_the_order_buildkit_reports_them(tmp_path: Path) -> None:
    shown = Shown()
    _follow("runtime-cached", tmp_path, report=shown)
    assert sorted(shown.lines) == sorted(RUNTIME_PROGRESS)  # BuildKit lists cached vertices in no fixed order
    assert (FIXTURES / "runtime-cached.log").read_text().count(" CACHED\n") == 6  # steps 2 to 7


def test_a_verbose_reporter_gets_every_line_and_none_gets_nothing(tmp_path: Path) -> None:
    verbose = Shown(verbose=True)
    _, lines = _follow("runtime-success", tmp_path, report=verbose)
    assert verbose.log == [f"[app] | {line}" for line in lines]
    quiet, lines = _follow("runtime-prepare-fails", tmp_path, report=None)  # the app image shows nothing
    assert (tmp_path / "runtime-prepare-fails.log").read_text() == "".join(line + "\n" for line in lines)
    assert quiet.failed(lines, ARGV).command is not None  # and still classifies


def test_the_build_phase_names_the_list_of_each_command_and_not_its_own_steps(tmp_path: Path) -> None:
    shown = Shown()
    _follow("build-command-fails", tmp_path, report=shown, other_steps=None)
    assert shown.lines == [
        "[app] build.prepareCommands 1/1 echo toolchain ready",
        "[app] build.buildCommands 1/3 echo compiling",
        "[app] build.buildCommands 2/3 echo 'error: no such module' >&2",
    ]


def test_the_log_opens_with_the_dockerfile(tmp_path: Path) -> None:
    with buildx.log_file(tmp_path / "a.log", "FROM x\n") as log:
        log.write("#1 line\n")
    with buildx.log_file(tmp_path / "b.log", None) as log:
        log.write("#1 line\n")
    assert (tmp_path / "a.log").read_text() == "FROM x\n\n# ---- docker buildx build ----\n#1 line\n"
    assert (tmp_path / "b.log").read_text() == "#1 line\n"


def _replay(name: str, *, fail: bool, calls: list[dict[str, Any]]) -> Any:
    """A stand-in for engine.build / engine.build_export that prints a captured log."""
    lines = (FIXTURES / f"{name}.log").read_text().splitlines()

    def fake(context: Path, *, on_line: Any, **options: Any) -> str:
        calls.append({"context": context, **options})
        for line in lines:
            on_line(line)
        if fail:
            raise engine.BuildError(lines, ARGV, 1)
        return "sha256:built"

    return fake


def test_run_loads_an_image_and_returns_its_id_with_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(engine, "build", _replay("runtime-success", fail=False, calls=calls))
    steps, _ = _steps("runtime-success")
    build = buildx.Build("app", tmp_path, tags=("repo/p/app:1",), labels={"k": "v"}, builder="b", no_cache=True)
    shown = Shown()
    with buildx.log_file(tmp_path / "prepare.log", "FROM x") as log:
        outcome = buildx.run(build, steps, log, report=shown, other_steps="runtime")
    assert outcome == buildx.Built("sha256:built", tmp_path / "prepare.log")
    assert shown.lines == RUNTIME_PROGRESS
    assert calls == [
        {
            "context": tmp_path,
            "dockerfile": tmp_path / "Dockerfile",
            "tags": ("repo/p/app:1",),
            "labels": {"k": "v"},
            "builder": "b",
            "target": None,
            "no_cache": True,
        }
    ]
    assert (tmp_path / "prepare.log").read_text().startswith("FROM x\n# ---- docker buildx build ----\n#0 building")


def test_run_returns_an_export_that_failed_classified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(engine, "build_export", _replay("build-command-fails", fail=True, calls=calls))
    steps, _ = _steps("build-command-fails")
    build = buildx.Build("app", tmp_path, target="artifact", export_to=tmp_path / "out", secrets=("id=s,src=f",))
    with buildx.log_file(tmp_path / "build.log", None) as log:
        outcome = buildx.run(build, steps, log, report=None)
    assert isinstance(outcome, buildx.Failed) and outcome.command is not None
    assert (outcome.command.field, outcome.command.index, outcome.exit_code) == ("build.buildCommands", 1, 1)
    assert (outcome.argv, outcome.log) == (ARGV, tmp_path / "build.log")
    assert calls == [
        {
            "context": tmp_path,
            "dockerfile": tmp_path / "Dockerfile",
            "dest": tmp_path / "out",
            "target": "artifact",
            "secrets": ("id=s,src=f",),
            "builder": None,
        }
    ]


# -- classification, and each phase's message --------------------------------------------------


def _plan(os_name: str = "alpine") -> Any:
    return SimpleNamespace(name="app", setup=SimpleNamespace(run=SimpleNamespace(os=os_name)))


def test_a_prepare_command_failing_among_several_is_named_with_its_line_exit_code_and_output(tmp_path: Path) -> None:
    failed = _failed("runtime-prepare-fails", tmp_path)
    assert failed.command is not None and (failed.command.field, failed.command.index) == ("run.prepareCommands", 1)
    assert (failed.exit_code, failed.tail) == (3, ["about to fail", "on stderr"])
    error = runtime_build._error(_plan(), failed)
    assert isinstance(error, StepFailed) and error.status == "PREPARING_RUNTIME_FAILED"
    assert str(error) == (
        "[app] PREPARING_RUNTIME_FAILED: zerops.yml:17: run.prepareCommands[1] failed with exit code 3\n"
        "  command: |\n    echo about to fail\n    echo on stderr >&2\n    exit 3\n"
        "  last lines of its output:\n    about to fail\n    on stderr\n"
        f"  full log: {tmp_path / 'runtime-prepare-fails.log'}"
    )
    location = error.failure.location
    assert location is not None and location.line == 17
    assert error.failure.log_path == str(tmp_path / "runtime-prepare-fails.log")


def test_a_failing_step_of_the_default_runtime_is_named_as_written_in_the_dockerfile(tmp_path: Path) -> None:
    failed = _failed("runtime-own-step-fails", tmp_path)
    assert failed.command is None and failed.step is not None and failed.step.step == 2
    error = runtime_build._error(_plan(), failed)
    assert isinstance(error, StepFailed)
    assert (error.failure.phase, error.failure.index, error.failure.exit_code) == ("default runtime", None, 100)
    assert str(error).splitlines()[:2] == [
        "[app] PREPARING_RUNTIME_FAILED: building the default alpine runtime failed (exit code 100) "
        "before any run.prepareCommands ran",
        "  command: RUN echo 'E: Unable to locate package erlang-nope' && exit 100",
    ]
    assert error.failure.tail == ["E: Unable to locate package erlang-nope"]


def test_a_failing_copy_is_a_step_without_an_exit_code(tmp_path: Path) -> None:
    failed = _failed("runtime-copy-fails", tmp_path)
    assert failed.step is not None and failed.line == "COPY missing/ /home/zerops/"
    assert (failed.exit_code, failed.tail, failed.error) == (None, [], '"/missing" not found: not found')
    error = runtime_build._error(_plan("ubuntu"), failed)
    assert isinstance(error, StepFailed) and error.failure.command == "COPY missing/ /home/zerops/"
    assert str(error).splitlines()[0] == (
        "[app] PREPARING_RUNTIME_FAILED: building the default ubuntu runtime failed (exit code None) "
        "before any run.prepareCommands ran"
    )


def test_a_failure_that_is_no_steps_is_the_engines_with_buildkits_message(tmp_path: Path) -> None:
    failed = _failed("runtime-unknown-instruction", tmp_path)
    assert (failed.step, failed.command) == (None, None)
    error = runtime_build._error(_plan(), failed)
    assert isinstance(error, EngineError) and error.command == tuple(ARGV)
    lines = str(error).splitlines()
    assert lines[0].startswith("[app] PREPARING_RUNTIME_FAILED: docker buildx build failed: failed to solve: rpc error")
    assert lines[0].endswith("dockerfile parse error line 2: unknown instruction: RUNX")
    assert lines[1] == "  command: " + " ".join(ARGV)
    assert lines[2] == "  last lines:" and lines[-1] == f"  full log: {tmp_path / 'runtime-unknown-instruction.log'}"
    assert len(lines) == 3 + 1 + 10  # the 10 lines buildx printed (fewer than 15)
    built = build_phase._error(SimpleNamespace(name="app"), failed)  # type: ignore[arg-type]
    assert isinstance(built, EngineError) and "command:" not in str(built)
    assert str(built).startswith("[app] BUILD_FAILED: docker buildx build failed: failed to solve")


def test_a_build_prepare_command_failing_in_the_base_layer_is_named_by_its_stage(tmp_path: Path) -> None:
    failed = _failed("build-prepare-fails", tmp_path, other_steps=None)
    assert failed.step is not None and failed.step.stage == "toolchain"
    error = build_phase._error(SimpleNamespace(name="app"), failed)  # type: ignore[arg-type]
    assert isinstance(error, StepFailed) and error.status == "BUILD_FAILED"
    assert str(error).splitlines()[:3] == [
        "[app] BUILD_FAILED: zerops.yml:7: build.prepareCommands[1] failed with exit code 127",
        "  command: echo missing tool >&2; exit 127",
        "  last lines of its output:",
    ]


def test_a_build_command_is_found_in_stage_build_behind_its_secret_mount(tmp_path: Path) -> None:
    failed = _failed("build-command-fails", tmp_path, other_steps=None)
    assert failed.command is not None and failed.command.command.text == CASES["build-command-fails"].build[1]
    assert failed.line == (
        "RUN --mount=type=secret,id=cri-build-env,mode=0444 " + with_build_env(CASES["build-command-fails"].build[1])
    )
    error = build_phase._error(SimpleNamespace(name="app"), failed)  # type: ignore[arg-type]
    assert isinstance(error, StepFailed)
    headline = "[app] BUILD_FAILED: zerops.yml:11: build.buildCommands[1] failed with exit code 1"
    assert str(error).splitlines()[0] == headline
    assert error.failure.tail == ["error: no such module"]


def test_a_failing_step_of_the_build_environment_is_named_as_buildkit_shows_it(tmp_path: Path) -> None:
    steps, _ = _steps("build-command-fails")
    lines = (FIXTURES / "build-command-fails.log").read_text().splitlines()
    # the same log, as if the step before the build commands had failed
    broken = [re.sub(r"^#12 DONE .*", "#12 ERROR: exit code: 2", line) for line in lines]
    assert broken != lines
    with LogFile(tmp_path / "b.log") as log:
        follower = buildx.Follower("app", steps, log, report=None)
        for line in broken:
            follower(line)
    error = build_phase._error(SimpleNamespace(name="app"), follower.failed(broken, ARGV))  # type: ignore[arg-type]
    assert isinstance(error, StepFailed) and error.failure.phase == "build environment"
    assert str(error).splitlines()[:2] == [
        "[app] BUILD_FAILED: a build step of cri-tasks failed (exit code 2)",
        "  command: WORKDIR /build/source",
    ]


def test_no_fixture_holds_a_path_of_the_machine_it_was_captured_on() -> None:
    for path in FIXTURES.iterdir():
        if not path.is_file() or path.suffix not in (".log", ".Dockerfile", ".py"):
            continue
        text = path.read_text()
        for private in (tempfile.gettempdir() + "/", str(Path.home()) + "/", str(FIXTURES.parents[2]) + "/"):
            assert private not in text, f"{path.name} holds {private}"
