"""Runtime prepare: the custom runtime image (CRI) of a setup, built only when its inputs changed.

The flow of one ``prepare`` (see docs/architecture.md):

1. :func:`plan` gathers each setup's inputs without Docker: run.os, run.base, run.prepareCommands,
   the addToRunPrepare list and the content hash of every file it names (stat-cached), the
   template digest and the Gleam source.
2. One ``docker image inspect`` resolves the base images and checks the candidate images; a
   setup whose fingerprint has a record **and** an image is up to date (no builder call, no
   python-on-whales or Jinja2 import).
3. The others build in parallel, each under a per-fingerprint file lock so concurrent processes
   build once: stage the context, render the Dockerfile, ``docker buildx build``, write the log,
   then (and only then) the record.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from . import engine, fingerprint, hitindex
from .buildlog import Tracker, step_lines
from .errors import CommandFailure, ConfigError, CriError, EngineError, Problem, StepFailed
from .model import Command, Project, Setup
from .dockerfile import exec_form, templates_digest
from .runtimes import DEFAULT_BASE, OPERATING_SYSTEMS, gleam_release_url, gleam_version
from .locks import locked
from .logfiles import LogFile, new_log
from .settings import Settings
from .store import Store
from .paths import private_dir
from .results import FAILED, PrepareResult, Reporter, stderr_reporter

#: prefix of every label cri-tasks puts on images, containers, volumes and services
LABEL = "io.cri-tasks"


def interrupted() -> CriError:
    return CriError("interrupted: the build was stopped; nothing was recorded", status="INTERRUPTED")


class PrepareFailed(CriError):
    """One or more setups failed; ``results`` holds every setup's outcome."""

    status = FAILED

    def __init__(self, errors: Sequence[CriError], results: Sequence[PrepareResult]) -> None:
        self.errors = tuple(errors)
        self.results = tuple(results)
        super().__init__("\n".join(str(e) for e in errors), status=errors[0].status)


@dataclass
class Plan:
    """What prepare needs to know about one setup before asking Docker anything."""

    setup: Setup
    inputs: dict[str, Any]
    entries: list[fingerprint.Entry]
    base_ref: str
    gleam_file: Path | None
    files_root: Path
    stats: dict[str, list[Any]] = field(default_factory=dict)  # the stat cache the scan used
    gleam_stat: list[Any] | None = None  # [size, mtime_ns, ino, dev] of the hashed Gleam archive
    fingerprint: str = ""
    last: dict[str, Any] | None = None  # the setup's record of its last good prepare
    record: dict[str, Any] | None = None
    guess_tag: str | None = None

    @property
    def name(self) -> str:
        return self.setup.name

    def with_base(self, base_id: str | None) -> str:
        self.inputs["baseImage"] = {"ref": self.base_ref, "id": base_id}
        self.fingerprint = fingerprint.compute(self.inputs)
        return self.fingerprint


def project_id(project: Project) -> str:
    """A short, stable name for the project on this engine: folder name + hash of its path."""
    import hashlib
    import re

    root = project.root.resolve()
    name = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:20] or "project"
    return f"{name}-{hashlib.sha256(str(root).encode()).hexdigest()[:6]}"


def image_key(setup: str, fp: str) -> str:
    return f"image/{setup}/{fp}"


def tag_for(settings: Settings, setup: str, fp: str) -> str:
    return f"{settings.repository}/{setup.lower()}:{fp[:12]}"


def gleam_source_for(settings: Settings, project: Project, store: Store, version: str) -> tuple[dict[str, Any], Path | None]:
    source = settings.gleam_source.strip()
    if source == "release":
        return {"source": "release", "version": version, "url": gleam_release_url(version)}, None
    if source == "none":
        return {"source": "none"}, None
    path = settings.gleam_archive(project.root)
    if path is None or not path.is_file():
        raise ConfigError(
            f"cri.gleam.source: {source!r} is neither 'release', 'none' nor an existing file ({path})"
        )
    st = path.stat()
    cache = fingerprint.StatCache(store.get("stat/gleam-archive"))
    sha = cache.file_digest(path, str(path), st)
    if cache.changed:
        store.set("stat/gleam-archive", cache.data)
    return {"source": "file", "version": version, "sha256": sha}, path


def plan(project: Project, setup: Setup, settings: Settings, store: Store, root: Path | None = None) -> Plan:
    """The inputs of one setup's runtime image (everything but the base image id).

    addToRunPrepare paths are read from ``root``: the project folder for a plain ``prepare``,
    the built tree (after buildCommands, as on Zerops) during ``deploy``."""
    run = setup.run
    os_info = OPERATING_SYSTEMS.get(run.os)
    if os_info is None:
        raise ConfigError([Problem(f"unsupported os {run.os!r}", path=f"{setup.name}: run.os")])
    version = gleam_version(run.base, where=run.where("base"), path=f"zerops[{setup.index}].run.base")
    refs = setup.build.add_to_run_prepare if setup.build else ()
    stat_key = f"stat/{setup.name}"
    stats = fingerprint.StatCache(store.get(stat_key))
    entries = fingerprint.scan(root or project.root, refs, stats)
    seen = stats.pruned()
    if stats.changed or len(seen) != len(stats.data):
        store.set(stat_key, seen)
    gleam, gleam_file = gleam_source_for(settings, project, store, version)
    gleam_stat = None
    if gleam_file is not None:
        hashed = (store.get("stat/gleam-archive") or {}).get(str(gleam_file))
        gleam_stat = hashed[:4] if hashed and hashed[4:] == [gleam["sha256"]] else None
    inputs: dict[str, Any] = {
        "os": run.os,
        "base": run.base or DEFAULT_BASE,
        "prepareCommands": [c.text for c in run.prepare_commands],
        "addToRunPrepare": [r.value for r in refs],
        "files": {e.rel: e.as_json() for e in entries},
        "templates": templates_digest(),
        "gleam": gleam,
        "zcli": settings.zcli_url if settings.zcli_enabled else None,
    }
    return Plan(setup, inputs, entries, settings.image_for(run.os), gleam_file, root or project.root,
                stats=seen, gleam_stat=gleam_stat)


# --------------------------------------------------------------------------------------------
# explain: why an image would be rebuilt


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diff_inputs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Field by field and file by file, what changed between two input sets."""
    reasons: list[str] = []
    for key in ("os", "base"):
        if old.get(key) != new.get(key):
            reasons.append(f"run.{key} changed: {_short(old.get(key))} -> {_short(new.get(key))}")
    a, b = old.get("prepareCommands", []), new.get("prepareCommands", [])
    for i in range(max(len(a), len(b))):
        if i >= len(a):
            reasons.append(f"run.prepareCommands[{i}] added: {_short(b[i])}")
        elif i >= len(b):
            reasons.append(f"run.prepareCommands[{i}] removed: {_short(a[i])}")
        elif a[i] != b[i]:
            reasons.append(f"run.prepareCommands[{i}] changed: {_short(a[i])} -> {_short(b[i])}")
    if old.get("addToRunPrepare") != new.get("addToRunPrepare"):
        reasons.append(
            f"build.addToRunPrepare changed: {old.get('addToRunPrepare')} -> {new.get('addToRunPrepare')}"
        )
    fa, fb = old.get("files", {}), new.get("files", {})
    for rel in sorted(set(fa) | set(fb)):
        if rel not in fa:
            reasons.append(f"addToRunPrepare: {rel} added")
        elif rel not in fb:
            reasons.append(f"addToRunPrepare: {rel} removed")
        elif fa[rel] != fb[rel]:
            ka, ma, ca = fa[rel].split(":", 2)
            kb, mb, cb = fb[rel].split(":", 2)
            if ka != kb:
                reasons.append(f"addToRunPrepare: {rel} changed from a {ka} to a {kb}")
            elif ca != cb:
                what = "link target" if kb == "link" else "content"
                reasons.append(f"addToRunPrepare: {rel} {what} changed")
            if ma != mb:
                reasons.append(f"addToRunPrepare: {rel} mode changed: {ma} -> {mb}")
    if old.get("templates") != new.get("templates"):
        reasons.append("the runtime templates of cri-tasks changed (new cri-tasks version)")
    if old.get("gleam") != new.get("gleam"):
        reasons.append(f"the Gleam CLI source changed: {old.get('gleam')} -> {new.get('gleam')}")
    if old.get("zcli") != new.get("zcli"):
        reasons.append("the zCLI setting changed")
    ob, nb = old.get("baseImage", {}), new.get("baseImage", {})
    if ob.get("ref") != nb.get("ref"):
        reasons.append(f"base image changed: {ob.get('ref')} -> {nb.get('ref')}")
    elif ob.get("id") != nb.get("id"):
        now = nb.get("id") or "not on this engine (would be pulled)"
        reasons.append(f"base image {nb.get('ref')} changed: {ob.get('id')} -> {now}")
    return reasons or ["the inputs differ in a way cri-tasks cannot name"]


# --------------------------------------------------------------------------------------------
# the whole phase


def prepare(
    project: Project,
    settings: Settings,
    *,
    setup: str | None = None,
    force: bool = False,
    no_cache: bool = False,
    explain: bool = False,
    debug: bool = False,
    report: Reporter = stderr_reporter,
    root: Path | None = None,
    hit_key: hitindex.Key | None = None,
) -> list[PrepareResult]:
    """Prepare the runtime image of each selected setup; see the module docstring.

    With ``hit_key`` (a plain prepare of the project folder), a run that ends with every setup
    up to date or built leaves an entry in the cache-hit index for the next call."""
    setups = project.select(setup)
    cache_dir = settings.cache_path(project.root)
    with Store(cache_dir) as store:
        plans = [plan(project, s, settings, store, root) for s in setups]
        _resolve(plans, settings, store, pull=not explain)
        if explain:
            return [_explain(p, settings) for p in plans]
        results: dict[str, PrepareResult] = {}
        todo: list[Plan] = []
        for p in plans:
            hit = None if force else _hit(p, store)
            if hit is not None:
                results[p.name] = hit
                report(f"[{p.name}] up to date ({hit.image})")
            else:
                todo.append(p)
    errors: list[CriError] = []
    if todo:
        args: dict[str, Any] = dict(settings=settings, project=project, force=force, no_cache=no_cache, debug=debug,
                                    report=report)
        if len(todo) == 1 or settings.parallel == 1 or debug:
            outcomes = [_build_guarded(p, **args) for p in todo]
        else:
            pool = ThreadPoolExecutor(max_workers=min(settings.parallel, len(todo)))
            try:
                outcomes = list(pool.map(lambda p: _build_guarded(p, **args), todo))
            except KeyboardInterrupt:
                # Ctrl-C reaches this thread only: stop the builds of the worker threads.
                engine.stop_children()
                pool.shutdown(wait=True, cancel_futures=True)
                raise interrupted() from None
            pool.shutdown()
        for p, (result, error) in zip(todo, outcomes):
            results[p.name] = result
            if error is not None:
                errors.append(error)
    ordered = [results[s.name] for s in setups]
    if errors:
        raise PrepareFailed(errors, ordered)
    if hit_key is not None and root is None:
        entries = [_hit_entry(p, results[p.name]) for p in plans]
        if all(e is not None for e in entries):
            with Store(cache_dir) as store:
                hitindex.remember(hit_key, [e for e in entries if e is not None], store)
    return ordered


def _hit_entry(p: Plan, r: PrepareResult) -> dict[str, Any] | None:
    """What the cache-hit index needs to say this setup is unchanged (see hitindex)."""
    files = fingerprint.recorded_signature(p.entries, p.stats)
    if files is None or r.image is None or r.image_id is None or (p.gleam_file is not None and p.gleam_stat is None):
        return None
    refs = p.setup.build.add_to_run_prepare if p.setup.build else ()
    return {
        "name": p.name,
        "root": str(p.files_root),
        "refs": [ref.value for ref in refs],
        "files": files,
        "gleam": None if p.gleam_file is None else {"path": str(p.gleam_file), "stat": p.gleam_stat},
        "base": dict(p.inputs["baseImage"]),
        "tag": r.image,
        "image_id": r.image_id,
        "fingerprint": r.fingerprint,
        "log": r.log,
    }


def _resolve(plans: list[Plan], settings: Settings, store: Store, *, pull: bool) -> None:
    """Fill each plan's base image id and fingerprint with one ``docker image inspect``.

    The fingerprint depends on the base image id, so guess it from the setup's last record and
    ask for the base images and the guessed images together; a wrong guess costs a second call.
    """
    refs: list[str] = []
    for p in plans:
        p.last = last = store.get(f"setup/{p.name}")
        guess = None
        if last and last.get("inputs", {}).get("baseImage", {}).get("ref") == p.base_ref:
            guess = last["inputs"]["baseImage"].get("id")
        p.with_base(guess)
        p.record = store.get(image_key(p.name, p.fingerprint))
        if p.record:
            p.guess_tag = p.record.get("tag")
        refs.extend(r for r in (p.base_ref, p.guess_tag) if r and r not in refs)
    ids = engine.image_ids(refs)
    for p in plans:
        base_id = ids.get(p.base_ref)
        if base_id is None and pull:
            base_id = engine.pull(p.base_ref)
            ids[p.base_ref] = base_id
        if base_id != p.inputs["baseImage"]["id"] or p.record is None:
            p.with_base(base_id)
            p.record = store.get(image_key(p.name, p.fingerprint))
            p.guess_tag = None
        if p.record is not None:
            tag = p.record.get("tag", "")
            present = ids.get(tag) if tag in ids else engine.image_ids([tag]).get(tag)
            p.record["present"] = present is not None and present == p.record.get("image_id")


def _hit(p: Plan, store: Store) -> PrepareResult | None:
    rec = p.record
    if not rec or not rec.get("present"):
        return None
    if not p.last or p.last.get("fingerprint") != p.fingerprint:
        # An earlier image matches again (a change was reverted): make it the current one.
        store.set(f"setup/{p.name}", _setup_record(p, rec["tag"], rec["image_id"]))
    return PrepareResult(
        p.name, "up to date", rec["tag"], rec["image_id"], p.fingerprint, True, 0.0, rec.get("log")
    )


def _explain(p: Plan, settings: Settings) -> PrepareResult:
    last = p.last
    tag = tag_for(settings, p.name, p.fingerprint)
    rec = p.record
    if rec and rec.get("present"):
        if last and last.get("fingerprint") != p.fingerprint:
            reasons = [f"up to date: the inputs match an image built earlier ({rec['tag']})"]
        else:
            reasons = ["up to date: nothing that invalidates the runtime image changed"]
        return PrepareResult(p.name, "up to date", rec["tag"], rec["image_id"], p.fingerprint, True, 0.0, rec.get("log"), tuple(reasons))
    if rec:
        reasons = [f"image {rec['tag']} was removed"]
    elif last is None:
        reasons = ["no runtime image was prepared for this setup yet (or it was cleared)"]
    else:
        reasons = diff_inputs(last.get("inputs", {}), p.inputs)
    return PrepareResult(p.name, "would build", tag, None, p.fingerprint, False, 0.0, None, tuple(reasons))


def _setup_record(p: Plan, tag: str, image_id: str) -> dict[str, Any]:
    return {"fingerprint": p.fingerprint, "tag": tag, "image_id": image_id, "inputs": p.inputs, "time": _now()}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# building one setup


@dataclass
class _Build:
    plan: Plan
    settings: Settings
    project: Project
    report: Reporter
    context: Path = field(default=Path())
    dockerfile_text: str = ""
    command_steps: dict[int, int] = field(default_factory=dict)  # step k -> command index


def _build_guarded(p: Plan, **kw: Any) -> tuple[PrepareResult, CriError | None]:
    """Build one setup; a CriError becomes a failed result so the other setups go on."""
    start = time.monotonic()
    try:
        return _build_one(p, **kw), None
    except KeyboardInterrupt:
        raise interrupted() from None
    except CriError as exc:
        log = exc.failure.log_path if isinstance(exc, StepFailed) else None
        status = exc.status if isinstance(exc, StepFailed) else getattr(exc, "status", "FAILED")
        result = PrepareResult(
            p.name, status, None, None, p.fingerprint, False, time.monotonic() - start, log, error=str(exc)
        )
        return result, exc


def _build_one(
    p: Plan, *, settings: Settings, project: Project, force: bool, no_cache: bool, debug: bool, report: Reporter
) -> PrepareResult:
    cache_dir = settings.cache_path(project.root)
    tag = tag_for(settings, p.name, p.fingerprint)
    waiting = f"[{p.name}] waiting for another cri-tasks process that builds the same image"
    with locked(cache_dir, f"{p.name}-{p.fingerprint}", timeout=settings.lock_timeout,
                on_wait=lambda: report(waiting), what="another process builds the same image"):
        with Store(cache_dir) as store:
            rec = store.get(image_key(p.name, p.fingerprint))
            # Another process may have built this image while we waited for the lock. With --force
            # only a build newer than the record this call started from counts.
            seen = p.record.get("image_id") if force and p.record and p.record.get("present") else None
            if rec and rec["image_id"] != seen and engine.image_ids([rec["tag"]]).get(rec["tag"]) == rec["image_id"]:
                store.set(f"setup/{p.name}", _setup_record(p, rec["tag"], rec["image_id"]))
                report(f"[{p.name}] up to date (built by another process: {rec['tag']})")
                return PrepareResult(p.name, "up to date", rec["tag"], rec["image_id"], p.fingerprint, True, 0.0, rec.get("log"))
        log_path = new_log(cache_dir, p.name, "prepare")
        b = _Build(p, settings, project, report)
        start = time.monotonic()
        try:
            with _staged(b, cache_dir, p.setup.run.prepare_commands):
                image_id = _run_build(b, tag, log_path, no_cache=no_cache)
        except StepFailed as failed:
            with Store(cache_dir) as store:
                store.set(f"log/{p.name}/prepare", {"path": str(log_path), "time": _now(), "ok": False})
            if debug:
                _debug_shell(b, failed, cache_dir)
            raise
        seconds = time.monotonic() - start
        record = {
            "tag": tag,
            "image_id": image_id,
            "setup": p.name,
            "inputs": p.inputs,
            "seconds": round(seconds, 3),
            "log": str(log_path),
            "time": _now(),
        }
        with Store(cache_dir) as store:
            store.set(image_key(p.name, p.fingerprint), record)
            store.set(f"setup/{p.name}", _setup_record(p, tag, image_id))
            store.set(f"log/{p.name}/prepare", {"path": str(log_path), "time": _now(), "ok": True})
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


class _staged:
    """Stage the build context (Dockerfile, addToRunPrepare files, Gleam archive); remove it after."""

    def __init__(self, b: _Build, cache_dir: Path, commands: Sequence[Command]) -> None:
        self.b, self.commands = b, commands
        self.dir = private_dir(cache_dir / "context") / f"{b.plan.name}-{b.plan.fingerprint[:16]}-{os.getpid()}"

    def __enter__(self) -> Path:
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
    tag = f"{b.settings.repository}-debug/{p.name.lower()}:{p.fingerprint[:12]}"
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


def last_log(project: Project, settings: Settings, setup: str, phase: str = "prepare") -> Path | None:
    with Store(settings.cache_path(project.root)) as store:
        rec = store.get(f"log/{setup}/{phase}")
    return Path(rec["path"]) if rec else None


def clean(project: Project, settings: Settings, *, setup: str | None = None, images: bool = False) -> list[dict[str, Any]]:
    """Zerops' "Clear runtime prepare image": forget the records (and optionally the images)."""
    out = []
    with Store(settings.cache_path(project.root)) as store:
        for s in project.select(setup):
            keys = store.keys(f"image/{s.name}/")
            tags = [r["tag"] for k in keys if (r := store.get(k))]
            for k in keys:
                store.delete(k)
            store.delete(f"setup/{s.name}")
            removed = engine.remove_images(tags) if images and tags else []
            out.append({"setup": s.name, "forgotten": len(keys), "removed": removed})
    return out
