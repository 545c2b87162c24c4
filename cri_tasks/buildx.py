"""One buildx build of a phase: streamed to the phase's log, shown as progress lines, its steps
mapped back to the zerops.yml commands they run, and a failure classified.

Runtime prepare (:mod:`cri_tasks.runtime_build`), the build phase (:mod:`cri_tasks.build_phase`,
its base layer and its artifact) and the app image (:mod:`cri_tasks.deploy_phase`) all build
through :func:`run`; each phase turns a :class:`Failed` into its own error (PREPARING_RUNTIME_FAILED,
BUILD_FAILED, DEPLOY_FAILED), since what a failing step means differs between them. The build
itself is :mod:`cri_tasks.engine`'s; the log is read by :mod:`cri_tasks.buildlog` alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

from . import engine
from .buildlog import Header, Tracker
from .dockerfile import steps as dockerfile_steps
from .errors import CommandFailure
from .logfiles import LogFile
from .model import Command
from .results import Reporter, build_line

#: what separates the Dockerfile from buildx's output in a phase's log
LOG_SEPARATOR = "\n# ---- docker buildx build ----\n"


@dataclass(frozen=True)
class StepCommand:
    """The zerops.yml command a Dockerfile step runs: ``field[index]`` of ``total``."""

    field: str  # "run.prepareCommands", "build.prepareCommands", "build.buildCommands"
    index: int
    total: int
    command: Command
    label: str = ""  # how the progress line names the list ("" says only "2/3")

    def progress(self, setup: str) -> str:
        """``[app] build.buildCommands 2/3 gleam build``: the command's first line, shortened."""
        text = self.command.text.strip()
        first = text.splitlines()[0] if text else ""
        label = f"{self.label} " if self.label else ""
        return f"[{setup}] {label}{self.index + 1}/{self.total} {first[:120]}"


class Steps:
    """A Dockerfile's steps as BuildKit numbers them, and the zerops.yml command each one runs.

    ``commands`` maps (stage, instruction line as rendered) to the command: the stage as the
    step headers name it (``""`` for a Dockerfile of one unnamed stage)."""

    def __init__(self, dockerfile: str, commands: Mapping[tuple[str, str], StepCommand] | None = None) -> None:
        self.by_stage = dockerfile_steps(dockerfile)
        self.commands = dict(commands or {})

    def line(self, step: Header) -> str | None:
        """The Dockerfile instruction (its first line) of a step header."""
        lines = self.by_stage.get(step.stage, [])
        return lines[step.step - 1] if 0 < step.step <= len(lines) else None

    def command(self, step: Header) -> StepCommand | None:
        line = self.line(step)
        return None if line is None else self.commands.get((step.stage, line))


@dataclass(frozen=True)
class Build:
    """What to build: the context (holding ``Dockerfile``), and either tags to load into the
    engine or a folder to export the target's filesystem to."""

    setup: str
    context: Path
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = dataclass_field(default_factory=dict)
    target: str | None = None
    export_to: Path | None = None
    secrets: tuple[str, ...] = ()
    builder: str | None = None
    no_cache: bool = False


@dataclass(frozen=True)
class Built:
    image_id: str | None  # None for an export
    log: Path


@dataclass(frozen=True)
class Failed:
    """A build that failed, classified: the step whose vertex printed the error (None when no
    step did: a frontend error, a base image that cannot be pulled), its Dockerfile line and the
    zerops.yml command it runs, when it runs one."""

    log: Path
    step: Header | None
    line: str | None
    command: StepCommand | None
    exit_code: int | None
    tail: list[str]  # the failing step's last output lines
    error: str | None  # BuildKit's error message
    output: list[str]  # everything buildx printed
    argv: list[str]  # the buildx command line

    def command_failure(self, setup: str) -> CommandFailure:
        """The failure of :attr:`command` (which must be set), naming its zerops.yml line."""
        assert self.command is not None
        found = self.command
        return CommandFailure(
            setup,
            found.field,
            found.index,
            found.command.text,
            found.command.location,
            self.exit_code,
            self.tail,
            str(self.log),
        )

    def step_failure(self, setup: str, phase: str, instruction: str) -> CommandFailure:
        """The failure of a step of cri-tasks' own (no zerops.yml command), shown as ``instruction``."""
        return CommandFailure(setup, phase, None, instruction, None, self.exit_code, self.tail, str(self.log))

    def last_lines(self, count: int = 15) -> str:
        """buildx's last lines, indented for a message."""
        return "\n".join(f"    {line}" for line in self.output[-count:])


Outcome = Built | Failed


@contextmanager
def log_file(path: Path, dockerfile: str | None) -> Iterator[LogFile]:
    """A phase's build log, opening with the Dockerfile it builds (``None``: buildx's output only)."""
    with LogFile(path) as log:
        if dockerfile is not None:
            log.write(dockerfile + LOG_SEPARATOR)
        yield log


def run(
    build: Build, steps: Steps, log: LogFile, *, report: Reporter | None, other_steps: str | None = None
) -> Outcome:
    """Run one ``docker buildx build`` followed by a :class:`Follower`. A failure of the build is
    a :class:`Failed`; an engine that cannot be reached raises
    :class:`~cri_tasks.errors.EngineError`. An export (``build.export_to``) needs ``build.target``."""
    follower = Follower(build.setup, steps, log, report=report, other_steps=other_steps)
    dockerfile = build.context / "Dockerfile"
    try:
        if build.export_to is not None:
            assert build.target is not None, "an export names the stage it exports"
            engine.build_export(
                build.context,
                dockerfile=dockerfile,
                dest=build.export_to,
                target=build.target,
                on_line=follower,
                secrets=build.secrets,
                builder=build.builder,
            )
            return Built(None, log.path)
        image_id = engine.build(
            build.context,
            dockerfile=dockerfile,
            tags=build.tags,
            labels=build.labels,
            on_line=follower,
            builder=build.builder,
            target=build.target,
            no_cache=build.no_cache,
        )
        return Built(image_id, log.path)
    except engine.BuildError as exc:
        return follower.failed(exc.log, exc.command)


class Follower:
    """What :func:`run` does with each line of buildx's output, as it arrives: write it to
    ``log``; show ``report`` (None: nothing is shown) each zerops.yml command as its step starts
    and, with ``other_steps``, the RUN, ADD and COPY steps of cri-tasks' own
    (``[app] runtime: RUN ...``); pass the line on to a reporter that shows the whole log."""

    def __init__(
        self, setup: str, steps: Steps, log: LogFile, *, report: Reporter | None, other_steps: str | None = None
    ) -> None:
        self.setup, self.steps, self.log = setup, steps, log
        self.report, self.other_steps = report, other_steps
        self.tracker = Tracker()

    def __call__(self, line: str) -> None:
        self.log.write(line + "\n")
        if self.report is not None:
            build_line(self.report, self.setup, line)
        started = self.tracker.feed(line)
        if started is None or self.report is None:
            return
        command = self.steps.command(started)
        instruction = self.steps.line(started)
        if command is not None:
            self.report(command.progress(self.setup))
        elif self.other_steps and instruction is not None and instruction.split(None, 1)[0] in ("RUN", "ADD", "COPY"):
            shown = instruction.rstrip(" \\")[:100]
            self.report(f"[{self.setup}] {self.other_steps}: {shown}")

    def failed(self, output: list[str], argv: list[str]) -> Failed:
        """The build failed: which step, its Dockerfile line and zerops.yml command."""
        step = self.tracker.failed_step
        return Failed(
            log=self.log.path,
            step=step,
            line=self.steps.line(step) if step is not None else None,
            command=self.steps.command(step) if step is not None else None,
            exit_code=self.tracker.exit_code,
            tail=self.tracker.tail(),
            error=self.tracker.error,
            output=list(output),
            argv=list(argv),
        )
