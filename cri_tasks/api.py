"""The plain Python API. Invoke tasks, Nox helpers and the ``cri`` program all call these;
no logic lives in the adapters. Every task returns its typed result (:mod:`cri_tasks.task_results`):
``as_json()`` is its ``--json`` document, ``lines()`` its text.

Each function takes ``settings`` as a :class:`~cri_tasks.settings.Settings`, a raw ``cri``
mapping (as in invoke.yaml), or None for the defaults. A function that works in the cache
folder opens one :class:`~cri_tasks.workspace.Workspace` for the call (the cache folder, one
records store, locks and logs) and hands it to the phases.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CriError, Problem
from .results import Reporter, stderr_reporter
from .settings import Settings, resolve
from .task_results import (
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
    Validation,
)

if TYPE_CHECKING:
    from .model import Project

SettingsLike = Settings | Mapping[str, Any] | None


def _settings(settings: SettingsLike) -> Settings:
    return settings if isinstance(settings, Settings) else resolve(settings)


def load(file: str | Path | None = None, settings: SettingsLike = None, *, data: bytes | None = None) -> Project:
    """Load and validate zerops.yml (``file``, else cri.file, else the default names); ``data``:
    its bytes, when the caller has read them already."""
    from .loader import load_project

    s = _settings(settings)
    return load_project(file if file is not None else s.file, data=data)


def _preflight(project: Project, s: Settings, setup: str | None, task: str) -> list[Problem]:
    """What ``task`` would refuse later (the file system, the task's own needs), before any work;
    the warnings it found."""
    from .preflight import check

    return check(project, project.select(setup), s, task)


def validate(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None) -> Validation:
    s = _settings(settings)
    project = load(file, s)
    _preflight(project, s, setup, "validate")  # an unknown setup name is an error here too
    if setup is not None:
        from .model import Project

        project = Project(project.file, tuple(project.select(setup)), project.warnings)
    return Validation(project)


def prepare(
    file: str | Path | None = None,
    *,
    setup: str | None = None,
    force: bool = False,
    no_cache: bool = False,
    explain: bool = False,
    debug: bool = False,
    settings: SettingsLike = None,
    report: Reporter = stderr_reporter,
) -> Prepared:
    """Build (or reuse) the custom runtime image of each selected setup.

    An unchanged project is answered from the cache-hit index (:mod:`cri_tasks.hitindex`)
    without loading zerops.yml; anything else takes the full path below."""
    from . import hitindex

    s = _settings(settings)
    key = None if explain else hitindex.Key.of(file, s, setup)
    if key is not None and not (force or no_cache or debug):
        hits = hitindex.lookup(key, report)
        if hits is not None:
            return Prepared(hits)
    from . import runtime_image as _prepare
    from .workspace import Workspace

    project = load(file, s, data=None if key is None else key.data)  # the very bytes of the key
    _preflight(project, s, setup, "prepare")
    with Workspace(project, s) as ws:
        return Prepared(
            _prepare.prepare(
                project,
                s,
                setup=setup,
                force=force,
                no_cache=no_cache,
                explain=explain,
                debug=debug,
                report=report,
                hit_key=key,
                workspace=ws,
            )
        )


def render(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None) -> Rendered:
    """The Dockerfile prepare would build, per setup."""
    from .runtime_build import render_dockerfile
    from .runtime_plan import plan
    from .workspace import Workspace

    s = _settings(settings)

    project = load(file, s)
    out = {}
    with Workspace(project, s) as ws:
        for st in project.select(setup):
            p = plan(project, st, s, ws.store)
            out[st.name] = render_dockerfile(p, s, st.run.prepare_commands)
    return Rendered(out)


def clean(
    file: str | Path | None = None, *, setup: str | None = None, images: bool = False, settings: SettingsLike = None
) -> Cleaned:
    """Forget prepared images (Zerops' "Clear runtime prepare image"); ``images`` removes them too."""
    from . import runtime_image as _prepare
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return Cleaned(_prepare.clean(project, s, setup=setup, images=images, workspace=ws))


def log_path(
    file: str | Path | None = None, *, setup: str, phase: str = "prepare", settings: SettingsLike = None
) -> Path:
    """The last log of ``phase`` for ``setup``."""
    from . import runtime_image as _prepare
    from .workspace import Workspace

    s = _settings(settings)

    project = load(file, s)
    project.select(setup)
    with Workspace(project, s) as ws:
        path = _prepare.last_log(project, s, setup, phase, workspace=ws)
    if path is None or not path.exists():
        raise CriError(f"[{setup}] no {phase} log yet: run the {phase} task for this setup first")
    return path


def build(
    file: str | Path | None = None,
    *,
    setup: str | None = None,
    settings: SettingsLike = None,
    report: Reporter = stderr_reporter,
) -> Built:
    """Run the build phase of each selected setup; returns their BuildResults."""
    from . import build_phase
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    for warning in _preflight(project, s, setup, "build"):
        report(str(warning))
    with Workspace(project, s) as ws:
        return Built(build_phase.build(project, st, s, report=report, store=ws.store) for st in project.select(setup))


def deploy(
    file: str | Path | None = None,
    *,
    setup: str | None = None,
    settings: SettingsLike = None,
    report: Reporter = stderr_reporter,
    check: bool = False,
) -> Deployed | DeployCheck:
    """Build, prepare and deploy each selected setup into fresh containers; returns DeployResults.

    ``check``: only say whether the deploy would build the runtime image (PrepareResults with
    ``would build`` or ``up to date``); the build phase runs, nothing is deployed."""
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    _preflight(project, s, setup, "deploy")
    with Workspace(project, s) as ws:
        if check:
            return DeployCheck(_deploy.check(project, s, setup=setup, report=report, workspace=ws))
        return Deployed(_deploy.deploy(project, s, setup=setup, report=report, workspace=ws))


def rollback(
    file: str | Path | None = None,
    *,
    setup: str,
    version: int | None = None,
    settings: SettingsLike = None,
    report: Reporter = stderr_reporter,
) -> Rollback:
    """Activate an earlier kept version (default: the one before the active one)."""
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return Rollback(_deploy.rollback(project, s, setup=setup, version=version, report=report, workspace=ws))


def status(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None) -> StatusReport:
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return StatusReport(_deploy.status(project, s, setup=setup, workspace=ws))


def stop(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None) -> Stopped:
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return Stopped(_deploy.stop(project, s, setup=setup, workspace=ws))


def logs(
    file: str | Path | None = None,
    *,
    setup: str,
    tail: int | None = 100,
    follow: bool = False,
    phase: str | None = None,
    settings: SettingsLike = None,
) -> Logs:
    """The logs of what a setup runs, as (source, text); ``follow`` streams them to the terminal;
    ``phase`` (``prepare`` or ``build``): the last log of that phase instead."""
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    if phase is not None:
        path = log_path(file, setup=setup, phase=phase, settings=s)
        return Logs(setup, [(str(path), path.read_text(encoding="utf-8", errors="replace"))], log_file=path)
    project = load(file, s)
    with Workspace(project, s) as ws:
        if follow:
            _deploy.follow_logs(project, s, setup=setup, workspace=ws)
            return Logs(setup)
        return Logs(setup, _deploy.logs(project, s, setup=setup, tail=tail, workspace=ws))
