"""The build phase (Zerops' build container), through buildx: a toolchain stage from build.os +
build.base with build.prepareCommands, the source in /build/source, buildCommands each in its own
shell, build.cache kept in a BuildKit cache mount, and the artifact assembled from deployFiles.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import artifact, engine, envvars, fingerprint
from .buildlog import Tracker, step_lines
from .dockerfile import exec_form, render, templates_digest, with_build_env
from .errors import CommandFailure, ConfigError, CriError, EngineError, Problem, StepFailed
from .model import Project, Setup
from .logfiles import LogFile, new_log
from .results import Reporter
from .runtime_plan import _now, gleam_source_for, project_id
from .runtimes import OPERATING_SYSTEMS, build_toolchain
from .settings import Settings
from .store import Store
from .paths import cache_folder, component, path_problem, private_dir

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
        why = path_problem(ref.value, "/build/source")  # the loader's rule, asked again
        if why is not None:
            raise ConfigError([Problem(f"{ref.value!r} {why}", path=ref.path, location=ref.location)])
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
        f"cd /build/cri-cache; n=0; for p in {words}; do [ -e \"$p\" ] || [ -L \"$p\" ] || continue; echo \"cri: build cache restored: $p\"; n=1; done\n"
        "[ $n = 1 ] || echo 'cri: build cache empty'\n"
        "cd /build/source; cp -a -n /build/cri-cache/. ./; chown -R zerops:zerops ."
    )


def _save_script(paths: list[str]) -> str:
    """Keep what the patterns match in /build/source for the next build, nothing else."""
    words = " ".join(glob_word(p) for p in paths)
    return _bash(
        "find /build/cri-cache -mindepth 1 -delete; cd /build/source\n"
        f"for p in {words}; do [ -e \"$p\" ] || [ -L \"$p\" ] || continue; d=$(dirname -- \"$p\"); mkdir -p \"/build/cri-cache/$d\"; "
        "cp -a -- \"$p\" \"/build/cri-cache/$d/\"; echo \"cri: build cache saved: $p\"; done"
    )


def build(project: Project, setup: Setup, settings: Settings, *, report: Reporter, store: Store) -> BuildResult:
    """Run the build phase for one setup; returns the assembled artifact folder."""
    component(setup.name, "setup name")  # before anything is written (the loader checked it too)
    b = setup.build
    if b is None:
        raise ConfigError(f"[{setup.name}] has no build section: nothing to deploy (zerops.yml needs build.deployFiles)")
    os_name = b.os
    if os_name not in OPERATING_SYSTEMS:
        raise ConfigError(f"[{setup.name}] build.os {os_name!r} is not supported")
    version = build_toolchain(b.base, where=b.where("base"), path=f"zerops[{setup.index}].build.base")
    gleam, gleam_file = gleam_source_for(settings, project, store, version)
    cache_dir = settings.cache_path(project.root)
    env = build_env(project, setup, settings)
    env_text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    paths = cache_paths(setup)
    base_image = settings.image_for(os_name)
    # The base-layer key: what Zerops names as invalidating the build cache (os, base,
    # prepareCommands, cache), plus what cri-tasks puts in that layer itself.
    cache_key = fingerprint.digest(
        [os_name, list(b.base), [c.text for c in b.prepare_commands], paths, gleam, settings.zcli_enabled,
         base_image, engine.image_ids([base_image]).get(base_image), templates_digest()]
    )
    # A builder other than the engine's own cannot start FROM an image of the engine.
    toolchain_image = None if settings.builder else f"{settings.repository}-build/{setup.name.lower()}:{cache_key[:16]}"
    context = {
        "os": os_name,
        "stage": "toolchain",
        "toolchain_image": toolchain_image,
        "base_image": base_image,
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
    name = component(setup.name, "setup name")
    work = cache_folder(cache_dir, "build") / name
    shutil.rmtree(work, ignore_errors=True)
    private_dir(work)
    source = work / "context" / "source"
    report(f"[{setup.name}] build: copying the project to /build/source")
    env_file = settings.env_file_path(project.root)
    artifact.stage_source(project.root, source, cache_dir=cache_dir, private=[env_file] if env_file else [])
    if gleam_file is not None:
        shutil.copy2(gleam_file, work / "context" / "gleam.tar.gz")
    (work / "context" / "Dockerfile").write_text(text)
    secret = work / "build-env"
    secret.touch(mode=0o600)
    secret.write_text(env_text)
    log_path = new_log(cache_dir, setup.name, "build")
    steps = step_lines(text)
    tracker = Tracker()
    stage_of = _stage_of_steps(text)
    commands = {**{("toolchain", f"RUN {exec_form(c.text)}"): ("build.prepareCommands", i, c) for i, c in enumerate(b.prepare_commands)},
                **{("build", f"RUN --mount=type=secret,id=cri-build-env,mode=0444 {with_build_env(c.text)}"): ("build.buildCommands", i, c) for i, c in enumerate(b.build_commands)}}
    start = time.monotonic()
    out_dir = work / "out"
    report(f"[{setup.name}] build: {len(b.build_commands)} build command(s) on {os_name}")
    with LogFile(log_path) as log:
        log.write(text + "\n# ---- docker buildx build ----\n")

        def on_line(line: str) -> None:
            log.write(line + "\n")
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
            if toolchain_image is not None and engine.image_ids([toolchain_image]).get(toolchain_image) is None:
                report(f"[{setup.name}] build: base layer (build.os, build.base, build.prepareCommands) -> {toolchain_image}")
                engine.build(
                    work / "context",
                    dockerfile=work / "context" / "Dockerfile",
                    tags=[toolchain_image],
                    labels={f"{engine.LABEL}.setup": setup.name, f"{engine.LABEL}.base-layer": cache_key},
                    on_line=on_line,
                    builder=settings.builder,
                    target="toolchain",
                )
            elif toolchain_image is not None:
                report(f"[{setup.name}] build: base layer up to date ({toolchain_image}): build.prepareCommands skipped")
            engine.build_export(
                work / "context",
                dockerfile=work / "context" / "Dockerfile",
                dest=out_dir,
                target="artifact",
                on_line=on_line,
                secrets=[f"id=cri-build-env,src={secret}"],
                builder=settings.builder,
            )
        except engine.BuildError as exc:
            raise _classify(setup, tracker, exc, log_path, stage_of, commands, steps) from None
        finally:
            secret.unlink(missing_ok=True)
            shutil.rmtree(work / "context", ignore_errors=True)
    dest = work / "artifact"
    try:
        count = artifact.assemble(out_dir, dest, b.deploy_files, ignore=artifact.ignore_spec(project.root, ".deployignore"))
    except ConfigError as exc:
        failure = CommandFailure(setup.name, "build.deployFiles", None, ", ".join(r.value for r in b.deploy_files), None, None, [str(exc)], str(log_path))
        raise StepFailed(failure, status=FAILED, headline=f"[{setup.name}] {FAILED}: {exc}") from None
    seconds = time.monotonic() - start
    store.set(f"log/{setup.name}/build", {"path": str(log_path), "time": _now(), "ok": True})
    report(f"[{setup.name}] build: artifact of {count} file(s) in {seconds:.1f} s")
    return BuildResult(setup.name, dest, out_dir, count, seconds, str(log_path))


def build_env(project: Project, setup: Setup, settings: Settings) -> dict[str, str]:
    """build.envVariables with every ``${name}`` resolved; an unknown reference is a ConfigError."""
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
    )


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
