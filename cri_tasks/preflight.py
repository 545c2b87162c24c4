"""Pre-flight: what a task would refuse later, refused before any work starts.

The loader checks every value on its own (names, paths, env values: the schema layer). What it
cannot check lives here, in the one function :func:`check` that ``validate``, ``prepare``,
``build`` and ``deploy`` call first (``cri_tasks.api``), for every selected setup at once:

- what needs the file system: an ``addToRunPrepare`` tree holding a symlink that leads outside
  the project (or a device, socket or pipe), a ``deployFiles`` entry that resolves outside it;
- what needs the task: deploy wants a build section, ``run.start``/``startCommands`` and a
  known target with sound settings; prepare, build and deploy want a Gleam base cri-tasks can
  build; build and deploy resolve the ``${name}`` references of the env variables (a cycle is
  refused; a reference that names nothing stays as written, as on Zerops: a warning).

The phases keep their own checks as a second wall; this only moves the moment of refusal from
after a build to before it. Nothing here writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from .errors import ConfigError, CriError, Problem
from .model import Project, Setup
from .paths import component
from .settings import Settings

TASKS = ("validate", "prepare", "build", "deploy")


def check(project: Project, setups: Sequence[Setup], settings: Settings, task: str) -> list[Problem]:
    """Raise one ConfigError with every problem ``task`` would meet later in ``setups``; return
    the warnings (``${name}`` references that name nothing stay as written, as on Zerops)."""
    assert task in TASKS, task
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for s in setups:
        problems.extend(_setup_problems(project, s, settings, task, warnings))
    if task == "deploy":
        # The deploy target and its settings (cri.target, cri.swarm.*): its constructor checks
        # them without the engine; the deploy made it only after the build.
        from .targets import get

        try:
            get(settings.target)(project, settings, lambda _line: None)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(sorted(problems, key=_place))
    return sorted(warnings, key=_place)


def _place(problem: Problem) -> tuple[int, int]:
    where = problem.location
    return (where.line, where.column) if where is not None else (0, 0)


def _setup_problems(project: Project, s: Setup, settings: Settings, task: str, warnings: list[Problem]) -> list[Problem]:
    problems: list[Problem] = []

    def ask(what: Callable[[], object]) -> None:
        try:
            what()
        except ConfigError as exc:
            problems.extend(exc.problems)
        except CriError as exc:
            problems.append(Problem(str(exc), path=f"zerops[{s.index}].setup", location=s.location))

    ask(lambda: component(s.name, "setup name"))
    if problems:
        return problems  # nothing below may join this name into anything
    if task != "prepare":  # prepare's plan walks addToRunPrepare itself before any build
        ask(lambda: _tree(project.root, s))
    if task in ("prepare", "deploy"):
        from .runtimes import gleam_version

        ask(lambda: gleam_version(s.run.base, where=s.run.where("base"), path=f"zerops[{s.index}].run.base"))
    if task in ("build", "deploy"):
        problems.extend(_build_problems(project, s, settings, ask, warnings))
    if task in ("validate", "deploy"):
        from .cron import CronError, parse

        for i, job in enumerate(s.run.crontab):
            try:
                parse(job.timing)
            except CronError as exc:
                problems.append(Problem(str(exc), path=f"zerops[{s.index}].run.crontab[{i}].timing",
                                        location=s.run.where("crontab")))
    if task == "deploy":
        run = s.run
        if run.start is None and not run.start_commands:
            message = "run.start or run.startCommands is needed to deploy"
            problems.append(Problem(message, path=f"zerops[{s.index}].run", location=run.location or s.location))
        else:
            from .deploy_phase import Version, run_env

            ask(lambda: run_env(project, s, settings, Version(0, "", "sha256:000000000000", ""), warnings))
    return problems


def _build_problems(project: Project, s: Setup, settings: Settings, ask: Callable[[Callable[[], object]], None],
                    warnings: list[Problem]) -> list[Problem]:
    b = s.build
    if b is None:
        message = "has no build section: nothing to build or deploy (it needs build.deployFiles)"
        return [Problem(message, path=f"zerops[{s.index}]", location=s.location)]
    from .build_phase import build_env
    from .runtimes import build_toolchain

    ask(lambda: build_toolchain(b.base, where=b.where("base"), path=f"zerops[{s.index}].build.base"))
    ask(lambda: build_env(project, s, settings, warnings))
    return []


def _tree(root: Path, s: Setup) -> None:
    """The files the build starts from: symlinks leading outside, devices, sockets, pipes."""
    b = s.build
    if b is None:
        return
    from . import fingerprint
    from .artifact import parse_deploy_path

    # Only what exists now: the build may create the rest, and the phases check it then.
    fingerprint.check_tree(root, [r for r in b.add_to_run_prepare if os.path.lexists(root / r.value.strip())])
    real_root = os.path.realpath(root)
    for ref in b.deploy_files:
        dp = parse_deploy_path(ref)
        path = root / dp.source if dp.source else root
        if not os.path.lexists(path):
            continue
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            message = f"{ref.value!r} points outside the project folder (to {real})"
            raise ConfigError([Problem(message, path=ref.path, location=ref.location)])
