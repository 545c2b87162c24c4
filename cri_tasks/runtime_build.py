"""Building one setup's runtime image: stage the context, render the Dockerfile, run buildx
under the setup's per-fingerprint lock, classify a failure, then (and only then) record it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import buildx, engine, fingerprint, records
from .dockerfile import exec_form
from .engine import LABEL
from .errors import CriError, EngineError, StepFailed
from .locks import sweep
from .model import Command, Project
from .paths import cache_folder, component, writing
from .results import PREPARING_RUNTIME_FAILED, PrepareResult, Reporter
from .runtime_plan import Plan, tag_for
from .runtimes import OPERATING_SYSTEMS
from .settings import Settings
from .store import Store
from .workspace import Workspace


def interrupted() -> CriError:
    return CriError("interrupted: the build was stopped; nothing was recorded", status="INTERRUPTED")


@dataclass
class _Build:
    plan: Plan
    settings: Settings
    project: Project
    report: Reporter
    context: Path = field(default=Path())
    dockerfile_text: str = ""
    steps: buildx.Steps = field(default_factory=lambda: buildx.Steps(""))


def build_guarded(p: Plan, store: Store, **kw: Any) -> tuple[PrepareResult, CriError | None]:
    """Build one setup (:func:`build_one`); a CriError becomes a failed result so the other
    setups go on."""
    start = time.monotonic()
    try:
        return build_one(p, store, **kw), None
    except KeyboardInterrupt:
        raise interrupted() from None
    except CriError as exc:
        log = exc.failure.log_path if isinstance(exc, StepFailed) else None
        status = exc.status if isinstance(exc, StepFailed) else getattr(exc, "status", "FAILED")
        result = PrepareResult(
            p.name, status, None, None, p.fingerprint, False, time.monotonic() - start, log, error=str(exc)
        )
        return result, exc


def build_one(
    p: Plan, store: Store, *, workspace: Workspace, force: bool, no_cache: bool, debug: bool, report: Reporter
) -> PrepareResult:
    """Build one setup's runtime image under its per-fingerprint lock and record it in ``store``
    (the workspace's, or the worker thread's own)."""
    settings, cache_dir = workspace.settings, workspace.cache_dir
    tag = tag_for(settings, p.project_id, p.name, p.fingerprint)
    waiting = f"[{p.name}] waiting for another cri-tasks process that builds the same image"
    with workspace.lock(
        _lock_key(p.name, p.fingerprint),
        timeout=settings.lock_timeout,
        on_wait=lambda: report(waiting),
        what="another process builds the same image",
    ):
        rec = records.image(store, p.name, p.fingerprint)
        # Another process may have built this image while we waited for the lock. With --force
        # only a build newer than the record this call started from counts.
        seen = p.record.image_id if force and p.record and p.present else None
        if rec and rec.image_id != seen and engine.image_ids([rec.tag]).get(rec.tag) == rec.image_id:
            records.set_prepared_setup(store, p.name, p.prepared(rec.tag, rec.image_id))
            report(f"[{p.name}] up to date (built by another process: {rec.tag})")
            return PrepareResult(p.name, "up to date", rec.tag, rec.image_id, p.fingerprint, True, 0.0, rec.log)
        log_path = workspace.new_log(p.name, "prepare")
        b = _Build(p, settings, workspace.project, report)
        start = time.monotonic()
        try:
            with _staged(b, cache_dir, p.setup.run.prepare_commands):
                image_id = _run_build(b, tag, log_path, no_cache=no_cache)
        except StepFailed as failed:
            records.set_last_log(store, p.name, "prepare", str(log_path), ok=False)
            if debug:
                _debug_shell(b, failed, cache_dir)
            raise
        seconds = time.monotonic() - start
        record = records.ImageRecord(tag, image_id, p.name, p.inputs, round(seconds, 3), str(log_path), records.now())
        records.set_image(store, p.name, p.fingerprint, record)
        records.set_prepared_setup(store, p.name, p.prepared(tag, image_id))
        records.set_last_log(store, p.name, "prepare", str(log_path), ok=True)
        report(f"[{p.name}] built {tag} in {seconds:.1f} s")
        return PrepareResult(p.name, "built", tag, image_id, p.fingerprint, False, seconds, str(log_path))


def render_dockerfile(p: Plan, settings: Settings, commands: Sequence[Command]) -> str:
    from .dockerfile import render

    run = p.setup.run
    gleam = dict(p.inputs["gleam"])
    if gleam["source"] == "file":
        gleam["context_name"] = "gleam.tar.gz"
    context = {
        "base_image": p.base_ref,
        "gleam": gleam,
        "zcli": {"enabled": settings.zcli_enabled, "url": settings.zcli_url},
        "add_files": bool(p.entries),
        "commands": [c.text for c in commands],
        "setup": p.name,
        "os": run.os,
    }
    return render(OPERATING_SYSTEMS[run.os].template, context)


def _steps(dockerfile: str, commands: Sequence[Command]) -> buildx.Steps:
    """The runtime Dockerfile's steps (one unnamed stage) and the prepare command each one runs."""
    return buildx.Steps(
        dockerfile,
        {
            ("", f"RUN {exec_form(command.text)}"): buildx.StepCommand(
                "run.prepareCommands", index, len(commands), command
            )
            for index, command in enumerate(commands)
        },
    )


def _lock_key(setup: str, fingerprint: str) -> str:
    """The lock a build of this image holds (its staged context is named after it)."""
    return f"{setup}-{fingerprint}"


# <setup>-<fingerprint>-<pid>: the context of one process's build, guarded by that build's lock
_CONTEXT_NAME = re.compile(r"^(?P<key>.+-[0-9a-f]{64})-\d+$")


def remove_leftovers(cache_dir: Path) -> list[Path]:
    """Remove the staged contexts of builds that were killed (no process holds their lock);
    a context a live build uses is left alone."""
    try:
        entries = list(os.scandir(cache_dir / "context"))
    except OSError:
        return []
    removed: list[Path] = []
    for entry in entries:
        m = _CONTEXT_NAME.match(entry.name)
        if m is not None:
            removed += sweep(cache_dir, m.group("key"), [Path(entry.path)])
    return removed


class _staged:
    """Stage the build context (Dockerfile, addToRunPrepare files, Gleam archive); remove it after.
    Built under the image's lock; a write that fails (a full disk) removes what was staged."""

    def __init__(self, job: _Build, cache_dir: Path, commands: Sequence[Command]) -> None:
        self.job, self.commands = job, commands
        with writing("the runtime build context", cache_dir / "context"):
            folder = cache_folder(cache_dir, "context")
        self.dir = folder / component(
            f"{_lock_key(job.plan.name, job.plan.fingerprint)}-{os.getpid()}", "build context folder"
        )

    def __enter__(self) -> Path:
        with writing("the runtime build context (addToRunPrepare files, Dockerfile)", self.dir, partial=[self.dir]):
            return self._stage()

    def _stage(self) -> Path:
        job, root = self.job, self.job.plan.files_root
        shutil.rmtree(self.dir, ignore_errors=True)
        files = self.dir / "files"
        files.mkdir(parents=True)
        for entry in job.plan.entries:
            target = files / entry.rel
            if entry.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target, entry.mode)
            elif entry.kind == "link":
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(entry.content, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(root / entry.rel, target)
        if job.plan.gleam_file is not None:
            _link_or_copy(job.plan.gleam_file, self.dir / "gleam.tar.gz")
        job.context = self.dir
        job.dockerfile_text = render_dockerfile(job.plan, job.settings, self.commands)
        (self.dir / "Dockerfile").write_text(job.dockerfile_text)
        job.steps = _steps(job.dockerfile_text, self.commands)
        return self.dir

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _run_build(job: _Build, tag: str, log_path: Path, *, no_cache: bool) -> str:
    plan = job.plan
    gleam = plan.inputs["gleam"]
    cli = "no gleam CLI" if gleam["source"] == "none" else f"gleam {gleam['version']}"
    what = f"{plan.setup.run.os}, {cli}, base {plan.base_ref}"
    job.report(f"[{plan.name}] building runtime image {tag} ({what})")
    labels = {
        f"{LABEL}.project": plan.project_id,
        f"{LABEL}.setup": plan.name,
        f"{LABEL}.fingerprint": plan.fingerprint,
        f"{LABEL}.inputs": fingerprint.canonical_json(_label_summary(plan.inputs)),
    }
    build = buildx.Build(
        plan.name, job.context, tags=(tag,), labels=labels, builder=job.settings.builder, no_cache=no_cache
    )
    with buildx.log_file(log_path, job.dockerfile_text) as log:
        outcome = buildx.run(build, job.steps, log, report=job.report, other_steps="runtime")
        if isinstance(outcome, buildx.Failed):
            raise _error(plan, outcome)
    assert outcome.image_id is not None  # a build that loads its image returns its id
    return outcome.image_id


def _label_summary(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "os": inputs["os"],
        "base": inputs["base"],
        "prepareCommands": len(inputs["prepareCommands"]),
        "addToRunPrepare": inputs["addToRunPrepare"],
        "files": len(inputs["files"]),
        "baseImage": inputs.get("baseImage", {}).get("ref"),
    }


def _error(plan: Plan, failed: buildx.Failed) -> CriError:
    """PREPARING_RUNTIME_FAILED naming the prepare command, or the default runtime's step that
    failed before any of them ran; a failure that is no step's is the engine's."""
    if failed.command is not None:
        return StepFailed(failed.command_failure(plan.name), status=PREPARING_RUNTIME_FAILED)
    if failed.step is not None:
        failure = failed.step_failure(plan.name, "default runtime", failed.line or f"step {failed.step.step}")
        headline = (
            f"[{plan.name}] {PREPARING_RUNTIME_FAILED}: building the default {plan.setup.run.os} runtime failed "
            f"(exit code {failed.exit_code}) before any run.prepareCommands ran"
        )
        return StepFailed(failure, status=PREPARING_RUNTIME_FAILED, headline=headline)
    message = (
        f"[{plan.name}] {PREPARING_RUNTIME_FAILED}: docker buildx build failed: {failed.error or 'see the log'}\n"
        f"  command: {' '.join(failed.argv)}\n  last lines:\n{failed.last_lines()}\n  full log: {failed.log}"
    )
    return EngineError(message, command=failed.argv, output="\n".join(failed.output))


def _debug_shell(job: _Build, failed: StepFailed, cache_dir: Path) -> None:
    """Like Zerops' debug mode: a shell in the state just before the failing command."""
    plan, report = job.plan, job.report
    failing = failed.failure.index
    if failing is None:
        report(f"[{plan.name}] --debug: the failure is in the default runtime, before any prepare command")
        return
    commands = plan.setup.run.prepare_commands
    tag = f"{job.settings.repository}-debug/{plan.project_id}/{plan.name.lower()}:{plan.fingerprint[:12]}"
    report(
        f"[{plan.name}] --debug: building the image up to run.prepareCommands[{failing - 1}]"
        if failing
        else f"[{plan.name}] --debug: building the image before the first prepare command"
    )
    with _staged(job, cache_dir, commands[:failing]):
        try:
            engine.build(
                job.context,
                dockerfile=job.context / "Dockerfile",
                tags=[tag],
                labels={},
                on_line=lambda _line: None,
                builder=job.settings.builder,
            )
        except engine.BuildError:
            report(f"[{plan.name}] --debug: could not build the state before the failing command")
            return
    shell = "/bin/bash" if plan.setup.run.os == "ubuntu" else "/bin/sh"
    report(f"[{plan.name}] --debug: a shell as zerops in /home/zerops ({tag}); the failing command was:")
    for line in commands[failing].text.splitlines():
        report(f"    {line}")
    report(f"[{plan.name}] --debug: run it, fix it, then exit the shell")
    engine.shell(tag, user="zerops", workdir="/home/zerops", command=[shell], tty=sys.stdin.isatty())
