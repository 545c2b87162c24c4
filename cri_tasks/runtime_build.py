"""Building one setup's runtime image: stage the context, render the Dockerfile, run buildx
under the setup's per-fingerprint lock, classify a failure, then (and only then) record it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from . import engine, fingerprint, records
from .engine import LABEL
from .buildlog import Tracker, step_lines
from .dockerfile import exec_form
from .errors import CommandFailure, CriError, EngineError, StepFailed
from .locks import sweep
from .logfiles import LogFile
from .model import Command, Project
from .paths import cache_folder, component, private_dir, writing
from .results import FAILED, PrepareResult, Reporter, build_line
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
    command_steps: dict[int, int] = field(default_factory=dict)  # step k -> command index


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
    with workspace.lock(_lock_key(p.name, p.fingerprint), timeout=settings.lock_timeout,
                        on_wait=lambda: report(waiting), what="another process builds the same image"):
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


def _command_steps(dockerfile: str, commands: Sequence[Command]) -> dict[int, int]:
    """Which BuildKit step (k of ``[k/n]``) runs which prepare command."""
    lines = step_lines(dockerfile)
    wanted = {f"RUN {exec_form(c.text)}": i for i, c in enumerate(commands)}
    return {k + 1: wanted[line] for k, line in enumerate(lines) if line in wanted}


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

    def __init__(self, b: _Build, cache_dir: Path, commands: Sequence[Command]) -> None:
        self.b, self.commands = b, commands
        with writing("the runtime build context", cache_dir / "context"):
            folder = cache_folder(cache_dir, "context")
        self.dir = folder / component(f"{_lock_key(b.plan.name, b.plan.fingerprint)}-{os.getpid()}", "build context folder")

    def __enter__(self) -> Path:
        with writing("the runtime build context (addToRunPrepare files, Dockerfile)", self.dir, partial=[self.dir]):
            return self._stage()

    def _stage(self) -> Path:
        b, root = self.b, self.b.plan.files_root
        shutil.rmtree(self.dir, ignore_errors=True)
        files = self.dir / "files"
        files.mkdir(parents=True)
        for e in b.plan.entries:
            target = files / e.rel
            if e.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target, e.mode)
            elif e.kind == "link":
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(e.content, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(root / e.rel, target)
        if b.plan.gleam_file is not None:
            _link_or_copy(b.plan.gleam_file, self.dir / "gleam.tar.gz")
        b.context = self.dir
        b.dockerfile_text = render_dockerfile(b.plan, b.settings, self.commands)
        (self.dir / "Dockerfile").write_text(b.dockerfile_text)
        b.command_steps = _command_steps(b.dockerfile_text, self.commands)
        return self.dir

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _run_build(b: _Build, tag: str, log_path: Path, *, no_cache: bool) -> str:
    p, report = b.plan, b.report
    commands = p.setup.run.prepare_commands
    tracker = Tracker()
    steps = step_lines(b.dockerfile_text)
    gleam = p.inputs["gleam"]
    cli = "no gleam CLI" if gleam["source"] == "none" else f"gleam {gleam['version']}"
    what = f"{p.setup.run.os}, {cli}, base {p.base_ref}"
    report(f"[{p.name}] building runtime image {tag} ({what})")
    with LogFile(log_path) as log:
        log.write(b.dockerfile_text + "\n# ---- docker buildx build ----\n")

        def on_line(line: str) -> None:
            log.write(line + "\n")
            build_line(report, p.name, line)
            step = tracker.feed(line)
            if step is None:
                return
            if step in b.command_steps:
                i = b.command_steps[step]
                first = commands[i].text.strip().splitlines()[0] if commands[i].text.strip() else ""
                report(f"[{p.name}] {i + 1}/{len(commands)} {first[:120]}")
            elif 0 < step <= len(steps) and steps[step - 1].split(None, 1)[0] in ("RUN", "ADD", "COPY"):
                shown = steps[step - 1].rstrip(" \\")[:100]
                report(f"[{p.name}] runtime: {shown}")

        labels = {
            f"{LABEL}.project": p.project_id,
            f"{LABEL}.setup": p.name,
            f"{LABEL}.fingerprint": p.fingerprint,
            f"{LABEL}.inputs": fingerprint.canonical_json(_label_summary(p.inputs)),
        }
        try:
            return engine.build(
                b.context,
                dockerfile=b.context / "Dockerfile",
                tags=[tag],
                labels=labels,
                on_line=on_line,
                builder=b.settings.builder,
                no_cache=no_cache,
            )
        except engine.BuildError as exc:
            raise _classify(b, tracker, exc, log_path) from None


def _label_summary(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "os": inputs["os"],
        "base": inputs["base"],
        "prepareCommands": len(inputs["prepareCommands"]),
        "addToRunPrepare": inputs["addToRunPrepare"],
        "files": len(inputs["files"]),
        "baseImage": inputs.get("baseImage", {}).get("ref"),
    }


def _classify(b: _Build, tracker: Tracker, exc: engine.BuildError, log_path: Path) -> CriError:
    p = b.plan
    step = tracker.failed_step
    commands = p.setup.run.prepare_commands
    if step is not None and step in b.command_steps:
        i = b.command_steps[step]
        cmd = commands[i]
        failure = CommandFailure(
            setup=p.name,
            phase="run.prepareCommands",
            index=i,
            command=cmd.text,
            location=cmd.location,
            exit_code=tracker.exit_code,
            tail=tracker.tail(),
            log_path=str(log_path),
        )
        return StepFailed(failure, status=FAILED)
    if step is not None:
        lines = step_lines(b.dockerfile_text)
        instruction = lines[step - 1] if 0 < step <= len(lines) else f"step {step}"
        failure = CommandFailure(
            setup=p.name,
            phase="default runtime",
            index=None,
            command=instruction,
            location=None,
            exit_code=tracker.exit_code,
            tail=tracker.tail(),
            log_path=str(log_path),
        )
        headline = (
            f"[{p.name}] {FAILED}: building the default {p.setup.run.os} runtime failed "
            f"(exit code {tracker.exit_code}) before any run.prepareCommands ran"
        )
        return StepFailed(failure, status=FAILED, headline=headline)
    tail = "\n".join(f"    {line}" for line in exc.log[-15:])
    message = (
        f"[{p.name}] {FAILED}: docker buildx build failed: {tracker.error or 'see the log'}\n"
        f"  command: {' '.join(exc.command)}\n  last lines:\n{tail}\n  full log: {log_path}"
    )
    return EngineError(message, command=exc.command, output="\n".join(exc.log))


def _debug_shell(b: _Build, failed: StepFailed, cache_dir: Path) -> None:
    """Like Zerops' debug mode: a shell in the state just before the failing command."""
    p, report = b.plan, b.report
    i = failed.failure.index
    if i is None:
        report(f"[{p.name}] --debug: the failure is in the default runtime, before any prepare command")
        return
    commands = p.setup.run.prepare_commands
    tag = f"{b.settings.repository}-debug/{p.project_id}/{p.name.lower()}:{p.fingerprint[:12]}"
    report(f"[{p.name}] --debug: building the image up to run.prepareCommands[{i - 1}]" if i else
           f"[{p.name}] --debug: building the image before the first prepare command")
    with _staged(b, cache_dir, commands[:i]):
        try:
            engine.build(b.context, dockerfile=b.context / "Dockerfile", tags=[tag], labels={}, on_line=lambda _l: None, builder=b.settings.builder)
        except engine.BuildError:
            report(f"[{p.name}] --debug: could not build the state before the failing command")
            return
    shell = "/bin/bash" if p.setup.run.os == "ubuntu" else "/bin/sh"
    report(f"[{p.name}] --debug: a shell as zerops in /home/zerops ({tag}); the failing command was:")
    for line in commands[i].text.splitlines():
        report(f"    {line}")
    report(f"[{p.name}] --debug: run it, fix it, then exit the shell")
    engine.shell(tag, user="zerops", workdir="/home/zerops", command=[shell], tty=sys.stdin.isatty())
