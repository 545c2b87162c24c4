"""The plain Python API. Invoke tasks, Nox helpers and the ``cri`` program all call these;
no logic lives in the adapters.

Each function takes ``settings`` as a :class:`~cri_tasks.settings.Settings`, a raw ``cri``
mapping (as in invoke.yaml), or None for the defaults. A function that works in the cache
folder opens one :class:`~cri_tasks.workspace.Workspace` for the call (the cache folder, one
records store, locks and logs) and hands it to the phases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, NamedTuple

from typing import TYPE_CHECKING

from .errors import CriError, Problem
from .results import PrepareResult, Reporter, stderr_reporter
from .settings import Settings, resolve

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


class Validation(NamedTuple):
    project: Project

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return self.project.warnings

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.project.file),
            "valid": True,
            "setups": [
                {
                    "setup": s.name,
                    "os": s.run.os,
                    "base": s.run.base,
                    "prepareCommands": len(s.run.prepare_commands),
                    "buildCommands": len(s.build.build_commands) if s.build else 0,
                }
                for s in self.project.setups
            ],
            "warnings": [problem_json(w) for w in self.warnings],
        }

    def lines(self) -> list[str]:
        """The text every adapter prints."""
        out = [f"{self.project.file}: valid, {len(self.project.setups)} setup(s)"]
        for e in self.as_json()["setups"]:
            out.append(f"  {e['setup']}: run.os={e['os']} run.base={e['base']} "
                       f"prepareCommands={e['prepareCommands']} buildCommands={e['buildCommands']}")
        return out


def clean_lines(entries: list[dict[str, Any]]) -> list[str]:
    """What ``clean`` did, as the text every adapter prints."""
    out = []
    for entry in entries:
        removed = f", removed {', '.join(entry['removed'])}" if entry["removed"] else ""
        out.append(f"{entry['setup']}: forgot {entry['forgotten']} record(s){removed}")
    return out


def status_lines(entries: list[dict[str, Any]]) -> list[str]:
    """What ``status`` found, as the text every adapter prints."""
    out = []
    for entry in entries:
        out.append(f"{entry['setup']}: active version {entry['active_version'] or '-'} "
                   f"(kept: {', '.join(map(str, entry['versions'])) or '-'}); runtime image {entry['runtime_image'] or '-'}")
        for ct in entry["containers"]:
            health = f", {ct['health']}" if ct.get("health") else ""
            node = f" on {ct['node']}" if ct.get("node") else ""
            out.append(f"  {ct['name']}{node}: {ct['status']}{health} (version {ct['version']})")
        down = [node for node, state in (entry.get("node_states") or {}).items() if state != "ready"]
        if down:
            out.append(f"  swarm nodes not ready: {', '.join(sorted(down))}")
        out.extend(f"  {url}" for url in entry["urls"])
    return out


def stop_lines(entries: list[dict[str, Any]]) -> list[str]:
    """What ``stop`` did, as the text every adapter prints."""
    return [f"{e['setup']}: removed {len(e['removed'])} container(s)" for e in entries]


def build_lines(results: list[Any]) -> list[str]:
    """What ``build`` made, as the text every adapter prints."""
    return [f"{r.setup}: built, {r.files} file(s) in {r.artifact}" for r in results]


def problem_json(p: Problem) -> dict[str, Any]:
    loc = p.location
    return {
        "file": loc.file if loc else None,
        "line": loc.line if loc else None,
        "column": loc.column if loc else None,
        "path": p.path,
        "message": p.message,
        "severity": p.severity,
    }


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
) -> list[PrepareResult]:
    """Build (or reuse) the custom runtime image of each selected setup.

    An unchanged project is answered from the cache-hit index (:mod:`cri_tasks.hitindex`)
    without loading zerops.yml; anything else takes the full path below."""
    from . import hitindex

    s = _settings(settings)
    key = None if explain else hitindex.Key.of(file, s, setup)
    if key is not None and not (force or no_cache or debug):
        hits = hitindex.lookup(key, report)
        if hits is not None:
            return hits
    from . import runtime_image as _prepare
    from .workspace import Workspace

    project = load(file, s, data=None if key is None else key.data)  # the very bytes of the key
    _preflight(project, s, setup, "prepare")
    with Workspace(project, s) as ws:
        return _prepare.prepare(
            project, s, setup=setup, force=force, no_cache=no_cache, explain=explain, debug=debug, report=report,
            hit_key=key, workspace=ws,
        )


def render(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None) -> dict[str, str]:
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
    return out


def clean(file: str | Path | None = None, *, setup: str | None = None, images: bool = False, settings: SettingsLike = None) -> list[dict[str, Any]]:
    """Forget prepared images (Zerops' "Clear runtime prepare image"); ``images`` removes them too."""
    from . import runtime_image as _prepare
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return _prepare.clean(project, s, setup=setup, images=images, workspace=ws)


def log_path(file: str | Path | None = None, *, setup: str, phase: str = "prepare", settings: SettingsLike = None) -> Path:
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


def build(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None,
          report: Reporter = stderr_reporter) -> list[Any]:
    """Run the build phase of each selected setup; returns their BuildResults."""
    from . import build_phase
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    for warning in _preflight(project, s, setup, "build"):
        report(str(warning))
    with Workspace(project, s) as ws:
        return [build_phase.build(project, st, s, report=report, store=ws.store) for st in project.select(setup)]


def deploy(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None,
           report: Reporter = stderr_reporter, check: bool = False) -> list[Any]:
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
            return _deploy.check(project, s, setup=setup, report=report, workspace=ws)
        return _deploy.deploy(project, s, setup=setup, report=report, workspace=ws)


def rollback(file: str | Path | None = None, *, setup: str, version: int | None = None,
             settings: SettingsLike = None, report: Reporter = stderr_reporter) -> Any:
    """Activate an earlier kept version (default: the one before the active one)."""
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return _deploy.rollback(project, s, setup=setup, version=version, report=report, workspace=ws)


def status(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None) -> list[dict[str, Any]]:
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return _deploy.status(project, s, setup=setup, workspace=ws)


def stop(file: str | Path | None = None, *, setup: str | None = None, settings: SettingsLike = None) -> list[dict[str, Any]]:
    from . import deploy_phase as _deploy
    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        return _deploy.stop(project, s, setup=setup, workspace=ws)


def logs(file: str | Path | None = None, *, setup: str, tail: int | None = 100, follow: bool = False,
         settings: SettingsLike = None) -> list[tuple[str, str]]:
    """The logs of what a setup runs, as (source, text); ``follow`` streams them to the terminal."""
    from . import deploy_phase as _deploy

    from .workspace import Workspace

    s = _settings(settings)
    project = load(file, s)
    with Workspace(project, s) as ws:
        if follow:
            _deploy.follow_logs(project, s, setup=setup, workspace=ws)
            return []
        return _deploy.logs(project, s, setup=setup, tail=tail, workspace=ws)
