"""The build phase (Zerops' build container), through buildx: a toolchain stage from build.os +
build.base with build.prepareCommands, the source in /build/source, buildCommands each in its own
shell, build.cache kept in a BuildKit cache mount, and the artifact assembled from deployFiles.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from . import artifact, engine, envvars, fingerprint, records, runtime_build
from .buildlog import Tracker, step_lines
from .dockerfile import exec_form, render, with_build_env
from .errors import CommandFailure, ConfigError, CriError, EngineError, Problem, StepFailed
from .model import Project, Setup
from .locks import locked, sweep
from .logfiles import LogFile, new_log
from .results import Reporter, build_line
from .runtime_plan import gleam_source_for
from .runtimes import OPERATING_SYSTEMS, gleam_version
from .settings import Settings
from .store import Store
from .workspace import project_id
from .paths import cache_folder, component, path_problem, private_dir, remove, writing

FAILED = "BUILD_FAILED"


@dataclass(frozen=True)
class BuildResult:
    setup: str
    artifact: Path  # folder holding what goes to /var/www
    tree: Path  # /build/source after the build commands (addToRunPrepare is read from here)
    files: int
    seconds: float
    log: str


def cache_paths(setup: Setup) -> list[str]:
    """build.cache as paths relative to /build/source ("." for everything)."""
    build = setup.build
    if build is None or build.cache is False:
        return []
    if build.cache is True:
        return ["."]
    out = []
    for ref in build.cache:
        why = path_problem(ref.value, "/build/source")  # the loader's rule, asked again
        if why is not None:
            raise ConfigError([Problem(f"{ref.value!r} {why}", path=ref.path, location=ref.location)])
        out.append(PurePosixPath(ref.value.strip()).as_posix())
    return out


def _restore_script(paths: list[str]) -> str:
    lines = []
    for p in paths:
        if p == ".":
            lines.append('if [ -n "$(ls -A /build/cri-cache)" ]; then cp -a -n /build/cri-cache/. ./ && chown -R zerops:zerops . && echo "cri: build cache restored: ."; fi')
            continue
        q, parent = shlex.quote(p), shlex.quote(PurePosixPath(p).parent.as_posix())
        lines.append(
            f"if [ -e /build/cri-cache/{q} ]; then mkdir -p {parent} && cp -a -n /build/cri-cache/{q} {parent}/ "
            f"&& chown -R zerops:zerops {q} && echo cri: build cache restored: {q}; else echo cri: build cache empty: {q}; fi"
        )
    return "\n".join(lines)


def _save_script(paths: list[str]) -> str:
    lines = []
    for p in paths:
        if p == ".":
            lines.append("find /build/cri-cache -mindepth 1 -delete && cp -a ./. /build/cri-cache/")
            continue
        q, parent = shlex.quote(p), shlex.quote(PurePosixPath(p).parent.as_posix())
        lines.append(
            f"rm -rf /build/cri-cache/{q} && mkdir -p /build/cri-cache/{parent} "
            f"&& if [ -e {q} ]; then cp -a {q} /build/cri-cache/{parent}/; fi"
        )
    return "\n".join(lines)


def build(project: Project, setup: Setup, settings: Settings, *, report: Reporter, store: Store) -> BuildResult:
    """Run the build phase for one setup; returns the assembled artifact folder. ``store`` is
    the call's records store; the cache folder is the one it was opened in."""
    component(setup.name, "setup name")  # before anything is written (the loader checked it too)
    b = setup.build
    if b is None:
        raise ConfigError(f"[{setup.name}] has no build section: nothing to deploy (zerops.yml needs build.deployFiles)")
    os_name = b.os
    if os_name not in OPERATING_SYSTEMS:
        raise ConfigError(f"[{setup.name}] build.os {os_name!r} is not supported")
    base = b.base[0] if b.base else "gleam@1.5"
    version = gleam_version(base, where=b.where("base"), path=f"zerops[{setup.index}].build.base")
    gleam, gleam_file = gleam_source_for(settings, project, store, version)
    cache_dir = store.cache_dir
    env = build_env(project, setup, settings)
    env_text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    paths = cache_paths(setup)
    cache_key = fingerprint.digest([os_name, list(b.base), [c.text for c in b.prepare_commands], paths])
    context = {
        "os": os_name,
        "stage": "toolchain",
        "base_image": settings.image_for(os_name),
        "gleam": {**gleam, "context_name": "gleam.tar.gz"},
        "zcli": {"enabled": settings.zcli_enabled, "url": settings.zcli_url},
        "prepare_commands": [c.text for c in b.prepare_commands],
        "build_commands": [c.text for c in b.build_commands],
        "env_digest": hashlib.sha256(("cri-build-env\0" + env_text).encode()).hexdigest(),
        "cache_id": f"cri-build-{project_id(project)}-{setup.name}-{cache_key[:16]}" if paths else None,
        "cache_restore": _restore_script(paths),
        "cache_save": _save_script(paths),
    }
    text = render("build.Dockerfile.j2", context)
    with work_folder(cache_dir, setup.name, settings, report) as work:
        return _build_in(work, project, setup, settings, text, env_text, gleam_file, report=report, store=store)


def _build_in(work: Path, project: Project, setup: Setup, settings: Settings, text: str, env_text: str,
              gleam_file: Path | None, *, report: Reporter, store: Store) -> BuildResult:
    b = setup.build
    assert b is not None
    cache_dir = store.cache_dir
    context_dir = work / "context"
    out_dir = work / "out"
    # A failed write (a full disk) removes what this build half made: the staged source, the
    # exported tree, the artifact; the lock keeps every other process out of ``work`` meanwhile.
    partial = [context_dir, out_dir, work / "artifact", work / SECRET_FILE]
    try:
        shutil.rmtree(work, ignore_errors=True)
        with writing("the build work folder", work, partial=partial):
            private_dir(work)
            source = context_dir / "source"
            report(f"[{setup.name}] build: copying the project to /build/source")
            env_file = settings.env_file_path(project.root)
            with writing("the staged project source (/build/source)", source, partial=partial):
                artifact.stage_source(project.root, source, cache_dir=cache_dir, private=[env_file] if env_file else [])
            if gleam_file is not None:
                shutil.copy2(gleam_file, context_dir / "gleam.tar.gz")
            (context_dir / "Dockerfile").write_text(text)
            log_path = new_log(cache_dir, setup.name, "build")
        steps = step_lines(text)
        tracker = Tracker()
        stage_of = _stage_of_steps(text)
        commands = {**{("toolchain", f"RUN {exec_form(c.text)}"): ("build.prepareCommands", i, c) for i, c in enumerate(b.prepare_commands)},
                    **{("build", f"RUN --mount=type=secret,id=cri-build-env,mode=0444 {with_build_env(c.text)}"): ("build.buildCommands", i, c) for i, c in enumerate(b.build_commands)}}
        start = time.monotonic()
        report(f"[{setup.name}] build: {len(b.build_commands)} build command(s) on {b.os}")
        with LogFile(log_path) as log, build_secret(work, env_text) as secret:
            log.write(text + "\n# ---- docker buildx build ----\n")

            def on_line(line: str) -> None:
                log.write(line + "\n")
                build_line(report, setup.name, line)
                tracker.feed(line)
                m = _header(line)
                if m is not None:
                    found = _lookup(m, stage_of, commands)
                    if found is not None:
                        field, i, c = found
                        first = c.text.strip().splitlines()[0] if c.text.strip() else ""
                        total = len(b.build_commands) if field == "build.buildCommands" else len(b.prepare_commands)
                        report(f"[{setup.name}] {field} {i + 1}/{total} {first[:120]}")

            try:
                engine.build_export(
                    context_dir,
                    dockerfile=context_dir / "Dockerfile",
                    dest=out_dir,
                    target="artifact",
                    on_line=on_line,
                    secrets=[f"id=cri-build-env,src={secret}"],
                    builder=settings.builder,
                )
            except engine.BuildError as exc:
                raise _classify(setup, tracker, exc, log_path, stage_of, commands, steps) from None
            finally:
                shutil.rmtree(context_dir, ignore_errors=True)
        dest = work / "artifact"
        try:
            with writing("the artifact (deployFiles)", dest, partial=partial):
                count = artifact.assemble(out_dir, dest, b.deploy_files, ignore=artifact.ignore_spec(project.root, ".deployignore"))
        except ConfigError as exc:
            failure = CommandFailure(setup.name, "build.deployFiles", None, ", ".join(r.value for r in b.deploy_files), None, None, [str(exc)], str(log_path))
            raise StepFailed(failure, status=FAILED, headline=f"[{setup.name}] {FAILED}: {exc}") from None
        seconds = time.monotonic() - start
        records.set_last_log(store, setup.name, "build", str(log_path), ok=True)
    except BaseException:
        for path in partial:
            remove(path)
        raise
    report(f"[{setup.name}] build: artifact of {count} file(s) in {seconds:.1f} s")
    return BuildResult(setup.name, dest, out_dir, count, seconds, str(log_path))


def build_env(project: Project, setup: Setup, settings: Settings, warnings: list[Problem] | None = None) -> dict[str, str]:
    """build.envVariables with every ``${name}`` resolved (``${RUNTIME_name}``: run.envVariables);
    one that names nothing stays as written and goes to ``warnings`` (envvars.resolve)."""
    b = setup.build
    if b is None:
        return {}
    return envvars.resolve(
        dict(b.env_variables),
        project=_project_env(settings, project),
        builtins={"hostname": setup.name, "serviceName": setup.name},
        where=f"zerops[{setup.index}].build.envVariables",
        location=b.location,
        locations={name: loc for name in b.env_variables if (loc := b.where(f"envVariables.{name}"))},
        other=dict(setup.run.env_variables), other_prefix="RUNTIME_", warnings=warnings,
    )


#: the build secrets' file when they cannot stay in memory (see :func:`build_secret`)
SECRET_FILE = "build-env"
#: what a killed build or deploy may leave in its work folder (the artifact is the build's output)
LEFTOVERS = ("context", "out", "app-context", SECRET_FILE)


def _lock_key(setup: str) -> str:
    return f"build-{setup}"


@contextmanager
def work_folder(cache_dir: Path, setup: str, settings: Settings, report: Reporter) -> Iterator[Path]:
    """Hold ``<cache>/build/<setup>`` (a build, or a deploy from its build to its app image) so
    that two processes never share it; the one that waits says so. What killed processes left
    in any build folder is removed first."""
    work = cache_dir / "build" / component(setup, "setup name")
    waiting = f"[{setup}] waiting for another cri-tasks process (a build or deploy of {setup}) that uses {work}"
    with locked(cache_dir, _lock_key(setup), timeout=settings.lock_timeout, on_wait=lambda: report(waiting),
                what=f"another build or deploy of {setup} uses {work}"):
        remove_leftovers(cache_dir)
        yield work


def remove_leftovers(cache_dir: Path) -> list[Path]:
    """Remove what builds and deploys killed mid-way left (work folders nobody holds, staged
    runtime contexts, a build secrets file); work that a live process holds is not touched."""
    removed = runtime_build.remove_leftovers(cache_dir)
    try:
        folders = [e for e in os.scandir(cache_dir / "build") if e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for entry in folders:
        removed += sweep(cache_dir, _lock_key(entry.name), [Path(entry.path) / leftover for leftover in LEFTOVERS])
    return removed


@contextmanager
def build_secret(work: Path, text: str) -> Iterator[str]:
    """Where buildx reads the build secrets (``--secret src=``) while the build runs.

    On Linux an anonymous in-memory file (memfd) that buildx reads through ``/proc/<pid>/fd``:
    the secrets never reach a disk and vanish with this process, even when it is killed.
    Elsewhere a file created 0600 with O_EXCL in the owner-only work folder, removed in a
    ``finally`` as soon as the build returns (a killed build's file is removed by
    :func:`remove_leftovers` at the next build or deploy)."""
    data = text.encode()
    if hasattr(os, "memfd_create") and os.path.isdir(f"/proc/{os.getpid()}/fd"):
        fd = os.memfd_create("cri-build-env", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/{os.getpid()}/fd/{fd}"
        finally:
            os.close(fd)
        return
    path = work / SECRET_FILE
    remove(path)
    try:
        with writing("the build secrets file", work, partial=[path]):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield str(path)
    finally:
        remove(path)


def _project_env(settings: Settings, project: Project) -> dict[str, str]:
    path = settings.env_file_path(project.root)
    return envvars.read_env_file(path) if path is not None else {}


def _header(line: str) -> tuple[str, int, str] | None:
    """(stage, step, instruction) of a BuildKit step header like ``#9 [build 3/7] RUN ...``."""
    import re

    m = re.match(r"^#\d+ \[(\S+)\s+(\d+)/\d+\] (.*)$", line)
    if m:
        return m.group(1), int(m.group(2)), m.group(3)
    return None


def _stage_of_steps(text: str) -> dict[str, list[str]]:
    """The step lines of each named stage (``FROM x AS name``)."""
    stages: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            parts = line.split()
            from_stage = parts[1] in stages  # FROM an earlier stage is not a step of its own
            current = parts[3] if len(parts) >= 4 and parts[2].upper() == "AS" else None
            if current:
                stages[current] = []
            if from_stage:
                continue
        if current:
            if line and not line.startswith("#") and line.split(None, 1)[0].upper() in ("FROM", "RUN", "COPY", "ADD", "WORKDIR"):
                stages[current].append(line)
    return stages


def _lookup(m: tuple[str, int, str], stages: dict[str, list[str]], commands: dict[tuple[str, str], Any]) -> Any:
    stage, step, _ = m
    lines = stages.get(stage, [])
    if 0 < step <= len(lines):
        return commands.get((stage, lines[step - 1]))
    return None


def _classify(setup: Setup, tracker: Tracker, exc: engine.BuildError, log_path: Path,
              stages: dict[str, list[str]], commands: dict[tuple[str, str], Any], steps: list[str]) -> CriError:
    vertex = tracker.failed_vertex
    header = None
    if vertex is not None:
        for line in exc.log:
            if line.startswith(f"#{vertex} [") and (h := _header(line)):
                header = h
                break
    if header is not None:
        found = _lookup(header, stages, commands)
        if found is not None:
            field, i, c = found
            failure = CommandFailure(setup.name, field, i, c.text, c.location, tracker.exit_code, tracker.tail(), str(log_path))
            return StepFailed(failure, status=FAILED)
        failure = CommandFailure(setup.name, "build environment", None, header[2], None, tracker.exit_code, tracker.tail(), str(log_path))
        return StepFailed(failure, status=FAILED, headline=f"[{setup.name}] {FAILED}: a build step of cri-tasks failed (exit code {tracker.exit_code})")
    tail = "\n".join(f"    {line}" for line in exc.log[-15:])
    return EngineError(f"[{setup.name}] {FAILED}: docker buildx build failed: {tracker.error or 'see the log'}\n  last lines:\n{tail}\n  full log: {log_path}")
