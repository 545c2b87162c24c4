"""Deploy: build, prepare, app image, then activation on a target (section 3 of the reference).

``deploy`` runs, per setup: the build phase (artifact), runtime prepare with addToRunPrepare taken
from the built tree (reused when nothing that matters changed), an app image (runtime image +
artifact in /var/www, tagged ``<repository>/<project id>/<setup>:v<N>``), then the target's
activation. Only a successful activation makes a version active; the last ``keep_versions``
versions are kept. A version records the image id it was built as, and that id is what runs.

Every command that reads a setup's deploy record first reconciles it with the engine
(:func:`reconcile`): the version the target actually serves becomes the active one, and app
images of the project that the records do not know (a deploy killed before it could record, a
lost records database) are adopted as versions, so numbering never reuses a tag that exists.
"""

from __future__ import annotations

import copy
import re
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import build_phase, buildx, cron, deployed, engine, envvars, records, runtime_image
from .dockerfile import render
from .engine import LABEL
from .errors import ConfigError, CriError, Problem
from .model import Project, Setup
from .paths import component, path_refusal, private_dir, remove, writing
from .probe import SwitchReport
from .results import PrepareResult, Reporter, stderr_reporter
from .runtime_plan import app_tag, repository_for
from .settings import Settings
from .store import Store
from .targets import Target, get

# The words a target shares with this module live below both (targets/base.py); they stay
# importable from here, where the callers of the deploy phase find them.
from .targets.base import (
    DEPLOY_FAILED,
    Activation,
    HealthTimings,
    Version,
    check_command,
    deploy_error,
    env_file_prefix,
)
from .workspace import Workspace, opened, project_id

__all__ = [
    "DEPLOY_FAILED",
    "Activation",
    "DeployFailed",
    "DeployResult",
    "HealthTimings",
    "Version",
    "builtins_for",
    "check",
    "check_command",
    "check_env_replace_targets",
    "checked_image",
    "deploy",
    "deploy_error",
    "env_warnings",
    "follow_logs",
    "logs",
    "reconcile",
    "rollback",
    "run_env",
    "status",
    "stop",
]


@dataclass(frozen=True)
class DeployResult:
    setup: str
    status: str  # "ACTIVE" | DEPLOY_FAILED | BUILD_FAILED | PREPARING_RUNTIME_FAILED
    version: int | None
    image: str | None
    runtime_image: str | None
    urls: list[str] = field(default_factory=list)
    switch: SwitchReport | None = None
    seconds: float = 0.0
    containers: list[str] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "status": self.status,
            "version": self.version,
            "image": self.image,
            "runtime_image": self.runtime_image,
            "urls": self.urls,
            "switch": self.switch.as_json() if self.switch else None,
            "seconds": round(self.seconds, 3),
            "containers": self.containers,
            "error": self.error,
        }

    def lines(self) -> list[str]:
        """The text every adapter prints."""
        out = [f"{self.setup}: version {self.version} {self.status.lower()} ({self.image})"]
        if self.switch is not None:
            out.append(f"  switch: {self.switch}")
        out.extend(f"  {url}" for url in self.urls)
        return out


class DeployFailed(CriError):
    status = DEPLOY_FAILED

    def __init__(self, errors: list[CriError], results: list[DeployResult]) -> None:
        self.errors, self.results = errors, results
        super().__init__("\n".join(str(e) for e in errors), status=errors[0].status)


def check_env_replace_targets(setup: Setup) -> None:
    """envReplace targets are paths inside /var/www (whatever the target runs on)."""
    env_replace = setup.run.env_replace
    if env_replace is None:
        return
    for ref in env_replace.targets:
        refusal = path_refusal(ref.value, "/var/www")  # the loader's rule and words, asked again
        if refusal is not None:
            raise ConfigError([Problem(refusal, path=ref.path, location=ref.location)])


def _target(ws: Workspace, report: Reporter) -> Target:
    return get(ws.settings.target)(ws.project, ws.settings, report, workspace=ws)


def _record(store: Store, setup: str) -> dict[str, Any]:
    """The setup's deploy record as JSON (an empty history when there is none)."""
    return (records.deploy_history(store, setup) or records.DeployHistory()).as_json()


def _save(store: Store, setup: str, rec: dict[str, Any]) -> None:
    records.set_deploy_history(store, setup, records.DeployHistory.from_json(rec))


def _version(entry: dict[str, Any]) -> Version:
    return Version.from_json(entry)


def checked_image(setup: str, version: Version) -> str:
    """The image id to run for ``version``: the id it was built as, after checking that its tag
    still names it. A tag moved to another image is an error that says which tag, which id was
    expected and which is there: running whatever the tag names now could start other code."""
    have = engine.image_ids([version.image]).get(version.image)
    if have == version.image_id:
        return version.image_id
    still = engine.image_ids([version.image_id]).get(version.image_id) is not None
    if have is None:
        if still:  # only the name went: the very image is there, give it its name back
            engine.tag_image(version.image_id, version.image)
            return version.image_id
        raise CriError(
            f"[{setup}] the image of version {version.number} ({version.image}, {version.image_id}) was removed"
        )
    hint = (
        f"`docker tag {version.image_id} {version.image}` puts the tag back"
        if still
        else f"the image {version.image_id} is gone: deploy a new version"
    )
    raise CriError(
        f"[{setup}] version {version.number}: the tag {version.image} points at {have}, not at "
        f"{version.image_id} that version {version.number} was built as; refusing to run another "
        f"image ({hint})",
        status=DEPLOY_FAILED,
    )


def reconcile(
    project: Project, settings: Settings, s: Setup, store: Store, target: Target, report: Reporter = stderr_reporter
) -> dict[str, Any]:
    """The setup's deploy record made true to the engine, written back when it changed.

    Call it holding the setup's deploy lock (a running deploy's image is not yet recorded).

    - App images of this project and setup that the record does not list, and that still
      carry their ``:v<N>`` tag, are adopted as versions (marked ``adopted``): an app image is
      only tagged once its build succeeded, so it is a complete version that a killed deploy
      or a lost database left untracked (a failed activation removes the tag). Adopting
      keeps it reachable by ``rollback`` and subject to ``keep_versions``; removing it could
      throw away every version of a project whose records were lost.
    - Numbering continues after the highest version found on the engine (labels and tags), so a
      new version never overwrites a tag that exists.
    - The version the target serves (the front proxy's configuration, the containers' labels)
      becomes the active one.
    """
    pid = project_id(project)
    owner = records.project_owner(store)
    if owner is None or owner.id != pid:
        # A cache folder inside the project moves with it (a renamed folder is the same
        # project); one outside it may be shared by mistake: its records are someone else's.
        inside = store.cache_dir.resolve().is_relative_to(project.root.resolve())
        if owner is not None and not inside:
            raise CriError(
                f"the cache folder {store.cache_dir} holds the deploy records of another project "
                f"({owner.root}); give each project its own cri.cache_dir"
            )
        records.set_project_owner(store, records.ProjectOwner(pid, str(project.root.resolve())))
    stored = records.deploy_history(store, s.name)
    rec = (stored or records.DeployHistory()).as_json()
    before = copy.deepcopy(rec)
    found = engine.list_images({f"{LABEL}.project": pid, f"{LABEL}.setup": s.name, f"{LABEL}.role": "app"})
    repo = repository_for(settings, pid, s.name)
    by_number: dict[int, engine.ImageInfo] = {}
    highest = 0
    for img in found:
        try:
            n = int(img.labels.get(f"{LABEL}.version", ""))
        except ValueError:
            continue
        highest = max(highest, n)
        # A version is an image that carries its tag: a failed activation removes the tag (the
        # image may stay, e.g. pulled from the registry under another name), and numbering
        # still never comes back to its number.
        if app_tag(settings, pid, s.name, n) in img.tags:
            by_number[n] = img
    for ref in engine.image_references(repo):
        m = re.fullmatch(re.escape(repo) + r":v(\d+)", ref)
        if m:
            highest = max(highest, int(m.group(1)))
    known = {int(v["version"]) for v in rec["versions"]}
    adopted = sorted(n for n in by_number if n not in known)
    if stored is None and by_number:
        report(
            f"warning: [{s.name}] the records in {store.directory} hold no deploy history, but the engine holds "
            f"{len(by_number)} app image(s) of this project ({', '.join(f'v{n}' for n in sorted(by_number))}); "
            f"adopting them, numbering continues at {highest + 1}"
        )
    for n in adopted:
        img = by_number[n]
        rec["versions"].append(
            Version(
                n,
                app_tag(settings, pid, s.name, n),
                img.id,
                img.labels.get(f"{LABEL}.runtime", ""),
                img.created[:19] + "Z" if img.created else "",
                adopted=True,
            ).as_json()
        )
        if stored is not None:
            report(f"[{s.name}] adopted version {n} ({img.id[:19]}): an earlier deploy built it but did not record it")
    rec["versions"].sort(key=lambda v: v["version"])
    if int(rec["next"]) <= highest:
        rec["next"] = highest + 1
    serving = target.running_version(s, rec["active"])
    if serving is not None and serving != rec["active"] and serving in {v["version"] for v in rec["versions"]}:
        report(
            f"[{s.name}] the records said version {rec['active']} is active, but version {serving} is what "
            f"runs: recorded version {serving} as active"
        )
        rec["active"] = serving
    if rec != before or stored is None and rec["versions"]:
        _save(store, s.name, rec)
    return rec


def builtins_for(project: Project, setup: Setup, version: Version) -> dict[str, str]:
    pid = project_id(project)
    plain = {
        "hostname": setup.name,
        "serviceName": setup.name,
        "projectId": pid,
        "serviceId": f"{pid}-{setup.name}",
        "appVersionId": f"{setup.name}-v{version.number}-{version.image_id.split(':')[-1][:12]}",
        "appVersionNumber": str(version.number),
    }
    # Zerops also documents them as ZEROPS_<name> (`zsc execOnce ${ZEROPS_appVersionId}`).
    return {**plain, **{f"ZEROPS_{k}": v for k, v in plain.items()}}


def run_env(
    project: Project, setup: Setup, settings: Settings, version: Version, warnings: list[Problem] | None = None
) -> dict[str, str]:
    """The container's variables; a ``${name}`` that names nothing stays as written and is
    added to ``warnings``. ``${BUILD_name}`` reads the build's ``envVariables``."""
    path = settings.env_file_path(project.root)
    project_vars = envvars.read_env_file(path) if path is not None else {}
    own = envvars.resolve(
        dict(setup.run.env_variables),
        project=project_vars,
        builtins=builtins_for(project, setup, version),
        where=f"zerops[{setup.index}].run.envVariables",
        location=setup.run.location,
        locations={name: loc for name in setup.run.env_variables if (loc := setup.run.where(f"envVariables.{name}"))},
        other=dict(setup.build.env_variables) if setup.build is not None else None,
        other_prefix="BUILD_",
        warnings=warnings,
    )
    return own


def env_warnings(project: Project, setup: Setup, settings: Settings) -> list[Problem]:
    """The ``${name}`` references of the setup's build and run variables that name nothing
    (kept as written), checked once before a build; a cycle raises ConfigError."""
    warnings: list[Problem] = []
    build_phase.build_env(project, setup, settings, warnings=warnings)
    run_env(project, setup, settings, Version(0, "", "sha256:000000000000", ""), warnings)
    return warnings


def deploy(
    project: Project,
    settings: Settings,
    *,
    setup: str | None = None,
    report: Reporter,
    workspace: Workspace | None = None,
) -> list[DeployResult]:
    """Deploy the selected setups one after the other.

    A target that says ``all_or_nothing = True`` (the swarm target: Swarm rolls back one service,
    never a stack, docker/cli#595) gets all-or-nothing deploys: after a failure the remaining
    setups are skipped and those this call already activated return to the version that was
    active before it (:func:`rollback`), or are stopped when none was. Other targets (local) go
    on with the next setup and keep what succeeded.
    """
    with opened(project, settings, workspace) as ws:
        return _deploy(ws, setup, report)


def _deploy(ws: Workspace, setup: str | None, report: Reporter) -> list[DeployResult]:
    from dataclasses import replace

    project, settings = ws.project, ws.settings
    setups = project.select(setup)
    for s in setups:  # every name before anything is written (the loader checked them too)
        component(s.name, "setup name")
    results: list[DeployResult] = []
    errors: list[CriError] = []
    try:
        all_or_nothing = get(settings.target).all_or_nothing
    except CriError:
        all_or_nothing = False  # an unknown target fails below, per setup, as it always did
    activated: list[tuple[Setup, int | None]] = []  # with the version active before this call
    for s in setups:
        start = time.monotonic()
        if errors and all_or_nothing:
            results.append(
                DeployResult(
                    s.name,
                    "SKIPPED",
                    None,
                    None,
                    None,
                    error=f"not deployed: {errors[0].status} in an earlier setup of this deploy",
                )
            )
            continue
        before: int | None = None
        if all_or_nothing:
            before = _record(ws.store, s.name)["active"]
        try:
            results.append(_deploy_one(ws, s, report, start))
            if all_or_nothing:
                activated.append((s, before))
        except CriError as exc:
            errors.append(exc)
            results.append(
                DeployResult(s.name, exc.status, None, None, None, seconds=time.monotonic() - start, error=str(exc))
            )
    if errors and activated:
        failed = ", ".join(r.setup for r in results if r.status not in ("ACTIVE", "SKIPPED"))
        for s, before in reversed(activated):
            i = next(k for k, r in enumerate(results) if r.setup == s.name)
            start = time.monotonic()
            try:
                if before is None:
                    report(f"[{s.name}] {failed} failed: removing {s.name} again (no version of it was active before)")
                    stop(project, settings, setup=s.name, workspace=ws)
                    note = f"[{s.name}] removed again: no version of it was active before and {failed} failed"
                    results[i] = DeployResult(
                        s.name, "ROLLED_BACK", None, None, None, seconds=time.monotonic() - start, error=note
                    )
                else:
                    report(f"[{s.name}] {failed} failed: returning {s.name} to version {before}")
                    back = rollback(project, settings, setup=s.name, version=before, report=report, workspace=ws)
                    note = f"[{s.name}] returned to version {before} because {failed} failed"
                    results[i] = replace(back, status="ROLLED_BACK", error=note)
                errors.append(CriError(note, status=DEPLOY_FAILED))
            except CriError as exc:
                errors.append(
                    CriError(
                        f"[{s.name}] could not return to version {before} after {failed} failed: {exc}",
                        status=exc.status,
                    )
                )
    if errors:
        raise DeployFailed(errors, results)
    return results


def _deploy_one(ws: Workspace, s: Setup, report: Reporter, start: float) -> DeployResult:
    check_env_replace_targets(s)
    project, settings, cache_dir, store = ws.project, ws.settings, ws.cache_dir, ws.store
    with ws.lock(f"deploy-{s.name}", wait=False, what=f"another deploy of {s.name} is running"):
        _remove_env_leftovers(cache_dir, s.name)
        # Fail on bad variables before anything is built or started; say which stay literal.
        for warning in env_warnings(project, s, settings):
            report(str(warning))
        # The build folder is this deploy's from the build until the app image holds the
        # artifact: an `invoke build` of the same setup waits (and says so) meanwhile.
        with build_phase.work_folder(cache_dir, s.name, settings, report):
            built = build_phase.build(project, s, settings, report=report, store=store)
            try:
                prepared = runtime_image.prepare(
                    project, settings, setup=s.name, root=built.tree, report=report, workspace=ws
                )[0]
            finally:
                shutil.rmtree(built.tree, ignore_errors=True)
            assert prepared.image is not None
            target = _target(ws, report)
            rec = reconcile(project, settings, s, store, target, report)
            number = int(rec["next"])
            rec["next"] = number + 1
            _save(store, s.name, rec)
            image, image_id = _app_image(ws, s, built.artifact, prepared.image, number, report)
        version = Version(number, image, image_id, prepared.image, records.now(), run=deployed.record(s))
        env = run_env(project, s, settings, version)
        rec = _record(store, s.name)
        previous = next((_version(v) for v in rec["versions"] if v["version"] == rec["active"]), None)
        report(f"[{s.name}] activating version {number}")
        checked_image(s.name, version)
        try:
            activation = target.activate(s, version, env, previous=previous)
        except CriError:
            # The version never served: its image goes, unless a container still uses it (then
            # the next command's reconcile adopts it). `untag` never forces.
            engine.untag(image)
            raise
        rec = _record(store, s.name)
        rec["versions"] = [v for v in rec["versions"] if v["version"] != number] + [version.as_json()]
        rec["active"] = number
        dropped = _trim(rec, settings.keep_versions)
        _save(store, s.name, rec)
        if dropped:
            engine.remove_images(dropped)
        shutil.rmtree(built.artifact, ignore_errors=True)
        for url in activation.urls:
            report(f"[{s.name}] version {number} is live: {url}")
        return DeployResult(
            s.name,
            "ACTIVE",
            number,
            image,
            prepared.image,
            activation.urls,
            activation.switch,
            time.monotonic() - start,
            activation.containers,
        )


def check(
    project: Project,
    settings: Settings,
    *,
    setup: str | None = None,
    report: Reporter,
    workspace: Workspace | None = None,
) -> list[PrepareResult]:
    """What ``deploy --check`` answers: whether a deploy would build the runtime image, for each
    selected setup. The runtime image of a deploy is prepared from the tree after the build
    (addToRunPrepare files may be build output), so the build phase runs (BuildKit caches it);
    nothing is prepared, versioned or started."""
    out = []
    with opened(project, settings, workspace) as ws:
        for s in project.select(setup):
            check_env_replace_targets(s)
            run_env(project, s, settings, Version(0, "", "sha256:000000000000", ""))
            built = build_phase.build(project, s, settings, report=report, store=ws.store)
            try:
                out.extend(
                    runtime_image.prepare(
                        project, settings, setup=s.name, root=built.tree, explain=True, report=report, workspace=ws
                    )
                )
            finally:
                shutil.rmtree(built.tree, ignore_errors=True)
                shutil.rmtree(built.artifact, ignore_errors=True)
    return out


def _remove_env_leftovers(cache_dir: Path, setup: str) -> None:
    """The env files (secrets) of this setup that a killed deploy left: the caller holds the
    setup's deploy lock, the only one under which targets write them."""
    import glob

    for path in (cache_dir / "tmp").glob(glob.escape(env_file_prefix(setup)) + "*"):
        remove(path)


def _trim(rec: dict[str, Any], keep: int) -> list[str]:
    versions = sorted(rec["versions"], key=lambda v: v["version"])
    dropped = versions[:-keep] if len(versions) > keep else []
    dropped = [v for v in dropped if v["version"] != rec["active"]]
    rec["versions"] = [v for v in versions if v not in dropped]
    return [v["image"] for v in dropped]


def _app_image(ws: Workspace, s: Setup, artifact: Path, runtime: str, number: int, report: Reporter) -> tuple[str, str]:
    settings = ws.settings
    run = s.run
    hc = run.health_check
    health = None
    if hc is not None:
        t = HealthTimings.of(hc)
        health = {
            "command": check_command(hc.http_get, hc.exec.text if hc.exec else None),
            "period": max(1, round(t.period)),
            "failure": max(1, round(t.failure)),
        }
    jobs = []
    for cron_job in run.crontab:
        sched = cron.parse(cron_job.timing)  # preflight refused a bad timing before the build
        jobs.append(
            {
                "command": cron_job.command.text,
                "working_dir": cron_job.working_dir or "/var/www",
                "all_containers": cron_job.all_containers,
                "either_day": sched.either_day,
                **{
                    k: " ".join(str(v) for v in getattr(sched, k))
                    for k in ("minutes", "hours", "days", "months", "weekdays")
                },
            }
        )
    cron_script = (
        render("cron.sh.j2", {"setup": s.name, "jobs": jobs, "first_host": f"{s.name.lower()}-1"}) if jobs else None
    )
    script = render(
        "run.sh.j2",
        {
            "cron": bool(jobs),
            "health": health,
            "setup": s.name,
            "env_replace": {
                "delimiters": list(run.env_replace.delimiters),
                "targets": [t.value for t in run.env_replace.targets],
            }
            if run.env_replace
            else None,
            "init_commands": [c.text for c in run.init_commands],
            "start": run.start.text if run.start else None,
            "start_commands": [
                {
                    "command": sc.command.text,
                    "working_dir": sc.working_dir or "/var/www",
                    "init_commands": [c.text for c in sc.init_commands],
                }
                for sc in run.start_commands
            ],
        },
    )
    name = component(s.name, "setup name")
    work = ws.folder("build") / name / "app-context"
    shutil.rmtree(work, ignore_errors=True)
    with writing("the app image context", work, partial=[work, artifact]):
        private_dir(work.parent)
        work.mkdir()
        artifact.rename(work / "app")
        (work / "Dockerfile").write_text(
            render("app.Dockerfile.j2", {"runtime_image": runtime, "run_script": script, "cron_script": cron_script})
        )
        pid = ws.project_id
        tag = app_tag(settings, pid, s.name, number)
        log_path = ws.new_log(s.name, "app-image")
    labels = {
        f"{LABEL}.project": pid,
        f"{LABEL}.setup": s.name,
        f"{LABEL}.role": "app",
        f"{LABEL}.version": str(number),
        f"{LABEL}.runtime": runtime,
    }
    build = buildx.Build(s.name, work, tags=(tag,), labels=labels, builder=settings.builder)
    try:
        with buildx.log_file(log_path, None) as log:
            outcome = buildx.run(build, buildx.Steps(""), log, report=None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if isinstance(outcome, buildx.Failed):
        raise CriError(
            f"[{s.name}] {DEPLOY_FAILED}: building the app image failed:\n"
            + "\n".join(outcome.output[-15:])
            + f"\n  full log: {log_path}",
            status=DEPLOY_FAILED,
        )
    assert outcome.image_id is not None  # a build that loads its image returns its id
    report(f"[{s.name}] app image {tag}")
    return tag, outcome.image_id


def rollback(
    project: Project,
    settings: Settings,
    *,
    setup: str,
    version: int | None,
    report: Reporter,
    workspace: Workspace | None = None,
) -> DeployResult:
    """Activate an earlier version (default: the one before the active one), zero-downtime."""
    with opened(project, settings, workspace) as ws:
        return _rollback(ws, setup, version, report)


def _rollback(ws: Workspace, setup: str, version: int | None, report: Reporter) -> DeployResult:
    project, settings, store = ws.project, ws.settings, ws.store
    s = project.select(setup)[0]
    start = time.monotonic()
    with ws.lock(f"deploy-{s.name}", wait=False, what=f"another deploy of {s.name} is running"):
        target = _target(ws, report)
        _remove_env_leftovers(ws.cache_dir, s.name)
        rec = reconcile(project, settings, s, store, target, report)
        kept = sorted((v for v in rec["versions"]), key=lambda v: v["version"])
        if not kept:
            raise CriError(f"[{s.name}] nothing deployed yet")
        if version is None:
            older = [v for v in kept if rec["active"] is None or v["version"] < rec["active"]]
            if not older:
                raise CriError(f"[{s.name}] no version before the active one ({rec['active']}) is kept")
            target_entry = older[-1]
        else:
            target_entry = next((v for v in kept if v["version"] == version), None)
            if target_entry is None:
                raise CriError(
                    f"[{s.name}] version {version} is not kept (kept: {', '.join(str(v['version']) for v in kept)})"
                )
        chosen = _version(target_entry)
        checked_image(s.name, chosen)
        previous = next((_version(v) for v in kept if v["version"] == rec["active"]), None)
        # The version comes back as it was deployed: its own run configuration and variables
        # (project env-file values read again now); one recorded without it gets today's.
        if chosen.run is None:
            report(
                f"[{s.name}] version {chosen.number} has no recorded run configuration: using the current zerops.yml's"
            )
        s = deployed.as_deployed(s, chosen.run)
        env = run_env(project, s, settings, chosen)
        report(f"[{s.name}] rolling back to version {chosen.number}")
        activation = target.activate(s, chosen, env, previous=previous)
        rec = _record(store, s.name)
        rec["active"] = chosen.number
        _save(store, s.name, rec)
        return DeployResult(
            s.name,
            "ACTIVE",
            chosen.number,
            chosen.image,
            chosen.runtime_image,
            activation.urls,
            activation.switch,
            time.monotonic() - start,
            activation.containers,
        )


def _reconciled(ws: Workspace, s: Setup, target: Target, report: Reporter) -> dict[str, Any]:
    """The setup's record after :func:`reconcile`, or as stored while a deploy of the setup runs
    (its state is in flux, and its new image is not yet recorded on purpose)."""
    with ExitStack() as stack:
        try:
            stack.enter_context(ws.lock(f"deploy-{s.name}", wait=False))
        except CriError:
            report(f"[{s.name}] a deploy of {s.name} is running: showing the records as they are")
            return _record(ws.store, s.name)
        return reconcile(ws.project, ws.settings, s, ws.store, target, report)
    raise AssertionError("unreachable")  # mypy: ExitStack may swallow exceptions


def status(
    project: Project,
    settings: Settings,
    *,
    setup: str | None = None,
    report: Reporter = stderr_reporter,
    workspace: Workspace | None = None,
) -> list[dict[str, Any]]:
    out = []
    with opened(project, settings, workspace) as ws:
        target = _target(ws, lambda _l: None)
        for s in project.select(setup):
            rec = _reconciled(ws, s, target, report)
            cri = records.prepared_setup(ws.store, s.name)
            active = next((v for v in rec["versions"] if v["version"] == rec["active"]), None)
            out.append(
                {
                    "setup": s.name,
                    "active_version": rec["active"],
                    "runtime_image": active["runtime_image"] if active else (cri.tag if cri else None),
                    "versions": [v["version"] for v in rec["versions"]],
                    **target.status(s),
                }
            )
    return out


def logs(
    project: Project, settings: Settings, *, setup: str, tail: int | None = 100, workspace: Workspace | None = None
) -> list[tuple[str, str]]:
    """The setup's recent logs as (source, text), from whatever the target runs."""
    s = project.select(setup)[0]
    with opened(project, settings, workspace) as ws:
        return list(_target(ws, lambda _l: None).logs(s, tail=tail))


def follow_logs(project: Project, settings: Settings, *, setup: str, workspace: Workspace | None = None) -> int:
    s = project.select(setup)[0]
    with opened(project, settings, workspace) as ws:
        return int(_target(ws, lambda _l: None).follow_logs(s))


def stop(
    project: Project, settings: Settings, *, setup: str | None = None, workspace: Workspace | None = None
) -> list[dict[str, Any]]:
    out = []
    with opened(project, settings, workspace) as ws:
        target = _target(ws, lambda _l: None)
        for s in project.select(setup):
            removed = target.stop(s)
            rec = _record(ws.store, s.name)
            rec["active"] = None
            _save(ws.store, s.name, rec)
            out.append({"setup": s.name, "removed": removed})
    return out
