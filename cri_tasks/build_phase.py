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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import artifact, buildx, engine, envvars, fingerprint, records, runtime_build
from .dockerfile import exec_form, render, templates_digest, with_build_env
from .errors import CommandFailure, ConfigError, CriError, EngineError, Problem, StepFailed
from .locks import locked, sweep
from .logfiles import new_log
from .model import Build, Project, Setup
from .paths import component, path_refusal, private_dir, remove, writing
from .results import Reporter
from .runtime_plan import gleam_source_for
from .runtimes import OPERATING_SYSTEMS, build_toolchain
from .settings import Settings
from .store import Store
from .workspace import project_id

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
    """build.cache as patterns relative to /build/source ("*" for everything).

    Zerops matches them with Go's ``filepath.Match`` (``*`` and ``?`` never cross a ``/``,
    ``[...]``/``[^...]`` classes, ``\\`` escapes; a leading dot is not special) and treats
    ``./node_modules``, ``node_modules`` and ``node_modules/`` alike."""
    build = setup.build
    if build is None or build.cache is False:
        return []
    if build.cache is True:
        return ["*"]
    out = []
    for ref in build.cache:
        refusal = path_refusal(ref.value, "/build/source")  # the loader's rule and words, asked again
        if refusal is not None:
            raise ConfigError([Problem(refusal, path=ref.path, location=ref.location)])
        value = ref.value.strip()
        while value.startswith("./"):
            value = value[2:]
        value = value.rstrip("/")
        out.append(value if value not in ("", ".") else "*")
    return out


def glob_word(pattern: str) -> str:
    """A Go ``filepath.Match`` pattern as one unquoted bash word that expands the same way
    (with ``dotglob``): glob characters stay, every other character is escaped."""
    out = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            out.append("\\" + next(chars, "\\"))
        elif c in "*?[]^" or c.isascii() and (c.isalnum() or c in "._/-+@%,:="):
            out.append(c)
        else:
            out.append("\\" + c)
    return "".join(out)


def _bash(script: str) -> str:
    # bash for its globbing: dotglob (Go's "*" matches a leading dot), nullglob (no match, no
    # word); both runtime images have bash.
    return f"bash -O dotglob -O nullglob -e -c {shlex.quote(script)}"


def _restore_script(paths: list[str]) -> str:
    """Restore what the last build saved, no-clobber: the source's own files win (Zerops)."""
    words = " ".join(glob_word(p) for p in paths)
    return _bash(
        f'cd /build/cri-cache; n=0; for p in {words}; do [ -e "$p" ] || [ -L "$p" ] || continue; echo "cri: build cache restored: $p"; n=1; done\n'
        "[ $n = 1 ] || echo 'cri: build cache empty'\n"
        "cd /build/source; cp -a -n /build/cri-cache/. ./; chown -R zerops:zerops ."
    )


def _save_script(paths: list[str]) -> str:
    """Keep what the patterns match in /build/source for the next build, nothing else."""
    words = " ".join(glob_word(p) for p in paths)
    return _bash(
        "find /build/cri-cache -mindepth 1 -delete; cd /build/source\n"
        f'for p in {words}; do [ -e "$p" ] || [ -L "$p" ] || continue; d=$(dirname -- "$p"); mkdir -p "/build/cri-cache/$d"; '
        'cp -a -- "$p" "/build/cri-cache/$d/"; echo "cri: build cache saved: $p"; done'
    )


def build(project: Project, setup: Setup, settings: Settings, *, report: Reporter, store: Store) -> BuildResult:
    """Run the build phase for one setup; returns the assembled artifact folder. ``store`` is
    the call's records store; the cache folder is the one it was opened in."""
    component(setup.name, "setup name")  # before anything is written (the loader checked it too)
    section = setup.build
    if section is None:
        raise ConfigError(
            f"[{setup.name}] has no build section: nothing to deploy (zerops.yml needs build.deployFiles)"
        )
    os_name = section.os
    if os_name not in OPERATING_SYSTEMS:
        raise ConfigError(f"[{setup.name}] build.os {os_name!r} is not supported")
    version = build_toolchain(section.base, where=section.where("base"), path=f"zerops[{setup.index}].build.base")
    gleam, gleam_file = gleam_source_for(settings, project, store, version)
    cache_dir = store.cache_dir
    env = build_env(project, setup, settings)
    env_text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    paths = cache_paths(setup)
    base_image = settings.image_for(os_name)
    # The base-layer key: what Zerops names as invalidating the build cache (os, base,
    # prepareCommands, cache), plus what cri-tasks puts in that layer itself.
    cache_key = fingerprint.digest(
        [
            os_name,
            list(section.base),
            [c.text for c in section.prepare_commands],
            paths,
            gleam,
            settings.zcli_enabled,
            base_image,
            engine.image_ids([base_image]).get(base_image),
            templates_digest(),
        ]
    )
    # A builder other than the engine's own cannot start FROM an image of the engine.
    toolchain_image = (
        None
        if settings.builder
        else f"{settings.repository}-build/{project_id(project)}/{setup.name.lower()}:{cache_key[:16]}"
    )
    context = {
        "os": os_name,
        "stage": "toolchain",
        "toolchain_image": toolchain_image,
        "base_image": base_image,
        "gleam": {**gleam, "context_name": "gleam.tar.gz"},
        "zcli": {"enabled": settings.zcli_enabled, "url": settings.zcli_url},
        "prepare_commands": [c.text for c in section.prepare_commands],
        "build_commands": [c.text for c in section.build_commands],
        "env_digest": hashlib.sha256(("cri-build-env\0" + env_text).encode()).hexdigest(),
        "cache_id": f"cri-build-{project_id(project)}-{setup.name}-{cache_key[:16]}" if paths else None,
        "cache_restore": _restore_script(paths),
        "cache_save": _save_script(paths),
    }
    text = render("build.Dockerfile.j2", context)
    with work_folder(cache_dir, setup.name, settings, report) as work:
        return _build_in(
            work,
            project,
            setup,
            settings,
            text,
            env_text,
            gleam_file,
            toolchain_image,
            cache_key,
            report=report,
            store=store,
        )


def _build_in(
    work: Path,
    project: Project,
    setup: Setup,
    settings: Settings,
    text: str,
    env_text: str,
    gleam_file: Path | None,
    toolchain_image: str | None,
    cache_key: str,
    *,
    report: Reporter,
    store: Store,
) -> BuildResult:
    section = setup.build
    assert section is not None
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
        steps = _steps(text, section)
        start = time.monotonic()
        report(f"[{setup.name}] build: {len(section.build_commands)} build command(s) on {section.os}")
        with buildx.log_file(log_path, text) as log, build_secret(work, env_text) as secret:
            try:
                outcome: buildx.Outcome | None = None
                if toolchain_image is not None and engine.image_ids([toolchain_image]).get(toolchain_image) is None:
                    report(
                        f"[{setup.name}] build: base layer (build.os, build.base, build.prepareCommands) -> {toolchain_image}"
                    )
                    labels = {
                        f"{engine.LABEL}.project": project_id(project),
                        f"{engine.LABEL}.setup": setup.name,
                        f"{engine.LABEL}.base-layer": cache_key,
                    }
                    base_layer = buildx.Build(
                        setup.name,
                        context_dir,
                        tags=(toolchain_image,),
                        labels=labels,
                        target="toolchain",
                        builder=settings.builder,
                    )
                    outcome = buildx.run(base_layer, steps, log, report=report)
                elif toolchain_image is not None:
                    report(
                        f"[{setup.name}] build: base layer up to date ({toolchain_image}): build.prepareCommands skipped"
                    )
                if not isinstance(outcome, buildx.Failed):
                    export = buildx.Build(
                        setup.name,
                        context_dir,
                        target="artifact",
                        export_to=out_dir,
                        secrets=(f"id=cri-build-env,src={secret}",),
                        builder=settings.builder,
                    )
                    outcome = buildx.run(export, steps, log, report=report)
            finally:
                shutil.rmtree(context_dir, ignore_errors=True)
            if isinstance(outcome, buildx.Failed):
                raise _error(setup, outcome)
        dest = work / "artifact"
        try:
            with writing("the artifact (deployFiles)", dest, partial=partial):
                ignore = artifact.ignore_spec(project.root, ".deployignore")
                count = artifact.assemble(out_dir, dest, section.deploy_files, ignore=ignore)
        except ConfigError as exc:
            deploy_files = ", ".join(ref.value for ref in section.deploy_files)
            failure = CommandFailure(
                setup.name, "build.deployFiles", None, deploy_files, None, None, [str(exc)], str(log_path)
            )
            raise StepFailed(failure, status=FAILED, headline=f"[{setup.name}] {FAILED}: {exc}") from None
        seconds = time.monotonic() - start
        records.set_last_log(store, setup.name, "build", str(log_path), ok=True)
    except BaseException:
        for path in partial:
            remove(path)
        raise
    report(f"[{setup.name}] build: artifact of {count} file(s) in {seconds:.1f} s")
    return BuildResult(setup.name, dest, out_dir, count, seconds, str(log_path))


def build_env(
    project: Project, setup: Setup, settings: Settings, warnings: list[Problem] | None = None
) -> dict[str, str]:
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
        other=dict(setup.run.env_variables),
        other_prefix="RUNTIME_",
        warnings=warnings,
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
    with locked(
        cache_dir,
        _lock_key(setup),
        timeout=settings.lock_timeout,
        on_wait=lambda: report(waiting),
        what=f"another build or deploy of {setup} uses {work}",
    ):
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


def _steps(dockerfile: str, build: Build) -> buildx.Steps:
    """The build Dockerfile's steps and the command each one runs: build.prepareCommands in the
    base layer (stage ``toolchain``), buildCommands in stage ``build``."""
    prepare = build.prepare_commands
    commands = build.build_commands
    return buildx.Steps(
        dockerfile,
        {
            **{
                ("toolchain", f"RUN {exec_form(command.text)}"): buildx.StepCommand(
                    "build.prepareCommands", index, len(prepare), command, label="build.prepareCommands"
                )
                for index, command in enumerate(prepare)
            },
            **{
                (
                    "build",
                    f"RUN --mount=type=secret,id=cri-build-env,mode=0444 {with_build_env(command.text)}",
                ): buildx.StepCommand("build.buildCommands", index, len(commands), command, label="build.buildCommands")
                for index, command in enumerate(commands)
            },
        },
    )


def _error(setup: Setup, failed: buildx.Failed) -> CriError:
    """BUILD_FAILED naming the build command (or build.prepareCommands entry), or the step of
    cri-tasks' own that failed; a failure that is no step's is the engine's."""
    if failed.command is not None:
        return StepFailed(failed.command_failure(setup.name), status=FAILED)
    if failed.step is not None:
        failure = failed.step_failure(setup.name, "build environment", failed.step.instruction)
        headline = f"[{setup.name}] {FAILED}: a build step of cri-tasks failed (exit code {failed.exit_code})"
        return StepFailed(failure, status=FAILED, headline=headline)
    return EngineError(
        f"[{setup.name}] {FAILED}: docker buildx build failed: {failed.error or 'see the log'}\n"
        f"  last lines:\n{failed.last_lines()}\n  full log: {failed.log}"
    )
