"""Pre-flight: what a task would refuse later, refused before any work starts.

The loader checks every value on its own (names, paths, env values: the schema layer). What it
cannot check lives here, in the one function :func:`check` that ``validate``, ``prepare``,
``build`` and ``deploy`` call first (``cri_tasks.api``), for every selected setup at once:

- what needs the file system: an ``addToRunPrepare`` tree holding a symlink that leads outside
  the project (or a device, socket or pipe), a ``deployFiles`` entry that resolves outside it;
- what needs the values of the file together with the settings: the ``${name}`` references of
  the env variables resolved with ``cri.env_file`` (a cycle is refused; a reference that names
  nothing stays as written, as on Zerops: a warning), the setup's ``cri.replicas`` and
  ``cri.publish``, the ``run.crontab`` timings. ``validate`` runs these with the very calls the
  deploy runs, so it refuses what the deploy would refuse for the same file;
- what needs the task: deploy wants a build section, ``run.start``/``startCommands`` and, for the
  swarm target, ``cri.registry``; prepare, build and deploy want a Gleam base cri-tasks can build.

A value that is wrong on its own (a path leaving its folder, a duration, a setting) is the
loader's or :func:`cri_tasks.settings.resolve`'s to refuse, never this module's. The phases keep
their own checks as a second wall; this only moves the moment of refusal from after a build to
before it. Nothing here writes anything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ConfigError, CriError, Problem
from .model import Project, Setup
from .paths import component
from .settings import SWARM_NEEDS_REGISTRY, Settings

TASKS = ("validate", "prepare", "build", "deploy")


def check(project: Project, setups: Sequence[Setup], settings: Settings, task: str) -> list[Problem]:
    """Raise one ConfigError with every problem ``task`` would meet later in ``setups``; return
    the warnings (``${name}`` references that name nothing stay as written, as on Zerops)."""
    assert task in TASKS, task
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for setup in setups:
        problems.extend(_setup_problems(project, setup, settings, task, warnings))
    if setups:
        try:
            settings.checked_gleam_archive(project.root)  # every task's runtime or build needs it
        except ConfigError as exc:
            problems.extend(exc.problems)
    if task == "deploy" and settings.target == "swarm" and not settings.registry:
        # cri.target and cri.swarm.* are checked with the other settings (settings.resolve);
        # the registry only the swarm target needs, and it asked for it after the build
        problems.append(Problem(SWARM_NEEDS_REGISTRY))
    if problems:
        raise ConfigError(sorted(problems, key=_place))
    return sorted(warnings, key=_place)


def _place(problem: Problem) -> tuple[int, int]:
    where = problem.location
    return (where.line, where.column) if where is not None else (0, 0)


def _setup_problems(
    project: Project, setup: Setup, settings: Settings, task: str, warnings: list[Problem]
) -> list[Problem]:
    problems: list[Problem] = []

    def collect(check_: Callable[[], object]) -> None:
        """Run one check; what it refuses joins ``problems`` (a bare CriError at the setup)."""
        try:
            check_()
        except ConfigError as exc:
            problems.extend(exc.problems)
        except CriError as exc:
            problems.append(Problem(str(exc), path=f"zerops[{setup.index}].setup", location=setup.location))

    collect(lambda: component(setup.name, "setup name"))
    if problems:
        return problems  # nothing below may join this name into anything
    if task != "prepare":  # prepare's plan walks addToRunPrepare itself before any build
        collect(lambda: _tree(project.root, setup))
    if task in ("prepare", "deploy"):
        from .runtimes import gleam_version

        run_base = f"zerops[{setup.index}].run.base"
        collect(lambda: gleam_version(setup.run.base, where=setup.run.where("base"), path=run_base))
    if task in ("build", "deploy"):
        problems.extend(_build_problems(setup, collect))
    if task in ("validate", "deploy"):
        problems.extend(_cron_problems(setup))
        # What the deploy refuses in the values of the file and the settings, validate refuses
        # too (the very same calls): a ${name} reference cycle, an unreadable cri.env_file, a
        # cri.replicas or cri.publish value of the setup.
        collect(lambda: settings.replicas_for(setup.name))
        for number in [port.port for port in setup.run.ports]:
            collect(functools.partial(settings.host_port, setup.name, number))
    if task != "prepare":
        _env_checks(project, setup, settings, task, collect, warnings)
    if task == "deploy" and setup.run.start is None and not setup.run.start_commands:
        message = "run.start or run.startCommands is needed to deploy"
        where = setup.run.location or setup.location
        problems.append(Problem(message, path=f"zerops[{setup.index}].run", location=where))
    return problems


def _build_problems(setup: Setup, collect: Callable[[Callable[[], object]], None]) -> list[Problem]:
    build = setup.build
    if build is None:
        message = "has no build section: nothing to build or deploy (it needs build.deployFiles)"
        return [Problem(message, path=f"zerops[{setup.index}]", location=setup.location)]
    from .runtimes import build_toolchain

    collect(lambda: build_toolchain(build.base, where=build.where("base"), path=f"zerops[{setup.index}].build.base"))
    return []


def _env_checks(
    project: Project,
    setup: Setup,
    settings: Settings,
    task: str,
    collect: Callable[[Callable[[], object]], None],
    warnings: list[Problem],
) -> None:
    """The ``${name}`` references of build.envVariables and run.envVariables resolved as the
    build and the deploy resolve them (with cri.env_file): a cycle is an error, a reference that
    names nothing a warning. ``build`` resolves only the build's variables."""
    from .build_phase import build_env

    collect(lambda: build_env(project, setup, settings, warnings))
    if task == "build":
        return
    if task == "deploy" and setup.run.start is None and not setup.run.start_commands:
        return  # refused for that already
    from .deploy_phase import Version, run_env

    collect(lambda: run_env(project, setup, settings, Version(0, "", "sha256:000000000000", ""), warnings))


def _cron_problems(setup: Setup) -> list[Problem]:
    from .cron import CronError, parse

    problems = []
    for i, job in enumerate(setup.run.crontab):
        try:
            parse(job.timing)
        except CronError as exc:
            problems.append(
                Problem(
                    str(exc), path=f"zerops[{setup.index}].run.crontab[{i}].timing", location=setup.run.where("crontab")
                )
            )
    return problems


def _tree(root: Path, setup: Setup) -> None:
    """The files the build starts from: symlinks leading outside, devices, sockets, pipes."""
    build = setup.build
    if build is None:
        return
    from . import fingerprint
    from .artifact import parse_deploy_path

    # Only what exists now: the build may create the rest, and the phases check it then.
    fingerprint.check_tree(root, [r for r in build.add_to_run_prepare if os.path.lexists(root / r.value.strip())])
    real_root = os.path.realpath(root)
    for ref in build.deploy_files:
        dp = parse_deploy_path(ref)
        path = root / dp.source if dp.source else root
        if not os.path.lexists(path):
            continue
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            message = f"{ref.value!r} points outside the project folder (to {real})"
            raise ConfigError([Problem(message, path=ref.path, location=ref.location)])
