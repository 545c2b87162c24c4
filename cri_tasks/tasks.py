"""Invoke tasks: thin adapters that read ``c.cri`` settings, call :mod:`cri_tasks.api` and turn
:class:`~cri_tasks.errors.CriError` into a clean exit (message on stderr, no traceback).

Use :func:`collection` rather than a module-level collection that users ``configure()``:
``ns = collection()`` in a tasks.py gives top-level tasks, ``ns.add_collection(collection())``
gives ``cri.*`` tasks.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, TypeVar

from invoke import Collection, Context, Exit, task

from . import api
from .errors import ConfigError, CriError
from .settings import DEFAULTS, Settings, merge

F = TypeVar("F", bound=Callable[..., Any])

COMMON_HELP = {
    "file": "zerops.yml to read (default: zerops.yaml, then zerops.yml, in the current folder)",
    "setup": "the setup to act on (default: every setup in the file)",
    "json": "print one JSON document on stdout instead of text",
}


#: the options of the tasks that act on what a deploy target runs
TARGET_HELP = {**COMMON_HELP, "target": "deploy target: local or swarm (default: cri.target)"}


def settings_of(c: Context, **overrides: Any) -> Settings:
    """The ``cri`` settings of this call, deep-merged over the defaults (pyinvoke/invoke#782);
    arguments given on the command line (non-empty ``overrides``) win."""
    from .config import settings_from

    return settings_from(c.config, {k: v for k, v in overrides.items() if v not in (None, "")})


def _exits(fn: F) -> F:
    """Turn a CriError into invoke's Exit (message, exit code 1, no traceback)."""

    @functools.wraps(fn)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(c, *args, **kwargs)
        except ConfigError as exc:
            if kwargs.get("json"):
                print(json.dumps({"valid": False, "errors": [api.problem_json(p) for p in exc.problems]}, indent=2))
            raise Exit(str(exc), code=1) from None
        except CriError as exc:
            results = getattr(exc, "results", None)
            if kwargs.get("json") and results is not None:
                print(json.dumps({"setups": [r.as_json() for r in results]}, indent=2))
            raise Exit(str(exc), code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def _out(text: str) -> None:
    print(text, flush=True)


@task(help=COMMON_HELP)
@_exits
def validate(c: Context, file: str = "", setup: str = "", json: bool = False) -> None:
    """Validate zerops.yml and list its setups."""
    s = settings_of(c)
    result = api.validate(file or None, setup=setup or None, settings=s)
    for w in result.warnings:
        print(str(w), file=sys.stderr)
    if json:
        _out(_dumps(result.as_json()))
        return
    for line in result.lines():
        _out(line)


@task(
    help={
        **COMMON_HELP,
        "force": "build even when a matching image is recorded (BuildKit's layer cache still applies)",
        "no_cache": "build without BuildKit's layer cache (implies --force)",
        "explain": "say whether the image would be rebuilt and why, field by field; build nothing",
        "debug": "on a failing prepare command, open a shell in the state just before it",
    }
)
@_exits
def prepare(
    c: Context,
    file: str = "",
    setup: str = "",
    force: bool = False,
    no_cache: bool = False,
    explain: bool = False,
    debug: bool = False,
    json: bool = False,
) -> None:
    """Build the custom runtime image (run.prepareCommands), unless nothing changed."""
    results = api.prepare(
        file or None,
        setup=setup or None,
        force=force or no_cache,
        no_cache=no_cache,
        explain=explain,
        debug=debug,
        settings=settings_of(c),
    )
    if json:
        _out(_dumps({"setups": [r.as_json() for r in results]}))
        return
    for r in results:
        for line in r.lines():
            _out(line)


@task(help={"file": COMMON_HELP["file"], "setup": COMMON_HELP["setup"]})
@_exits
def render(c: Context, file: str = "", setup: str = "") -> None:
    """Print the Dockerfile that prepare would build."""
    out = api.render(file or None, setup=setup or None, settings=settings_of(c))
    for i, (name, text) in enumerate(out.items()):
        if len(out) > 1:
            _out(("\n" if i else "") + f"# ---- setup {name} ----")
        sys.stdout.write(text)
    sys.stdout.flush()


@task(help={**COMMON_HELP, "images": "also remove the images themselves"})
@_exits
def clean(c: Context, file: str = "", setup: str = "", images: bool = False, json: bool = False) -> None:
    """Forget prepared runtime images (Zerops' "Clear runtime prepare image")."""
    out = api.clean(file or None, setup=setup or None, images=images, settings=settings_of(c))
    if json:
        _out(_dumps({"setups": out}))
        return
    for line in api.clean_lines(out):
        _out(line)


@task(
    help={
        "file": COMMON_HELP["file"],
        "setup": "the setup whose logs to show",
        "prepare": "the last runtime prepare log instead of the containers' logs",
        "build": "the last build log instead of the containers' logs",
        "follow": "keep streaming the containers' logs",
        "tail": "how many lines of each container's log (default 100)",
        "target": TARGET_HELP["target"],
    }
)
@_exits
def logs(c: Context, file: str = "", setup: str = "", prepare: bool = False, build: bool = False,
         follow: bool = False, tail: int = 100, target: str = "") -> None:
    """Show a setup's container logs, or its last prepare/build log."""
    if not setup:
        raise CriError("logs needs --setup NAME")
    s = settings_of(c, target=target)
    if prepare or build:
        phase = "prepare" if prepare else "build"
        path = api.log_path(file or None, setup=setup, phase=phase, settings=s)
        print(f"# {path}", file=sys.stderr)
        sys.stdout.write(path.read_text(encoding="utf-8", errors="replace"))
        sys.stdout.flush()
        return
    if follow:
        api.logs(file or None, setup=setup, follow=True, settings=s)
        return
    sources = api.logs(file or None, setup=setup, tail=tail, settings=s)
    if not sources:
        raise CriError(f"[{setup}] nothing runs: deploy it first")
    for source, text in sources:
        _out(f"==> {source} <==")
        sys.stdout.write(text)
    sys.stdout.flush()


@task(help={"file": COMMON_HELP["file"], "setup": COMMON_HELP["setup"], "json": COMMON_HELP["json"]})
@_exits
def build(c: Context, file: str = "", setup: str = "", json: bool = False) -> None:
    """Run the build phase (buildCommands) and assemble the deployFiles artifact."""
    results = api.build(file or None, setup=setup or None, settings=settings_of(c))
    doc = {"setups": [{"setup": r.setup, "status": "BUILT", "files": r.files, "seconds": round(r.seconds, 3),
                       "artifact": str(r.artifact), "log": r.log} for r in results]}
    if json:
        _out(_dumps(doc))
        return
    for r in results:
        _out(f"{r.setup}: built, {r.files} file(s) in {r.artifact}")


def _print_deploys(results: list[Any], json: bool) -> None:
    if json:
        _out(_dumps({"setups": [r.as_json() for r in results]}))
        return
    for r in results:
        for line in r.lines():
            _out(line)


@task(help=TARGET_HELP)
@_exits
def deploy(c: Context, file: str = "", setup: str = "", json: bool = False, target: str = "") -> None:
    """Build, prepare the runtime image and deploy into fresh containers (zero downtime)."""
    _print_deploys(api.deploy(file or None, setup=setup or None, settings=settings_of(c, target=target)), json)


@task(help={"file": COMMON_HELP["file"], "setup": "the setup to roll back", "version": "the version to activate (default: the one before the active one)", "json": COMMON_HELP["json"], "target": TARGET_HELP["target"]})
@_exits
def rollback(c: Context, file: str = "", setup: str = "", version: int = 0, json: bool = False, target: str = "") -> None:
    """Activate an earlier version of a setup, with the same zero-downtime switch."""
    if not setup:
        raise CriError("rollback needs --setup NAME")
    result = api.rollback(file or None, setup=setup, version=version or None, settings=settings_of(c, target=target))
    _print_deploys([result], json)


@task(help=TARGET_HELP)
@_exits
def status(c: Context, file: str = "", setup: str = "", json: bool = False, target: str = "") -> None:
    """Show setups, their active version, containers and health, and the runtime image in use."""
    out = api.status(file or None, setup=setup or None, settings=settings_of(c, target=target))
    if json:
        _out(_dumps({"setups": out}))
        return
    for entry in out:
        _out(f"{entry['setup']}: active version {entry['active_version'] or '-'} "
             f"(kept: {', '.join(map(str, entry['versions'])) or '-'}); runtime image {entry['runtime_image'] or '-'}")
        for ct in entry["containers"]:
            health = f", {ct['health']}" if ct.get("health") else ""
            node = f" on {ct['node']}" if ct.get("node") else ""
            _out(f"  {ct['name']}{node}: {ct['status']}{health} (version {ct['version']})")
        down = [node for node, state in (entry.get("node_states") or {}).items() if state != "ready"]
        if down:
            _out(f"  swarm nodes not ready: {', '.join(sorted(down))}")
        for url in entry["urls"]:
            _out(f"  {url}")


@task(help=TARGET_HELP)
@_exits
def stop(c: Context, file: str = "", setup: str = "", json: bool = False, target: str = "") -> None:
    """Stop and remove a setup's containers and front proxy (versions and images are kept)."""
    out = api.stop(file or None, setup=setup or None, settings=settings_of(c, target=target))
    if json:
        _out(_dumps({"setups": out}))
        return
    for entry in out:
        _out(f"{entry['setup']}: removed {len(entry['removed'])} container(s)")


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2)


TASKS = (validate, prepare, render, clean, logs, build, deploy, rollback, status, stop)


def collection(name: str = "cri", **settings: Any) -> Collection:
    """A fresh collection of the cri-tasks tasks, with every setting declared (defaults + overrides).

    ``ns = collection()`` in a tasks.py gives ``invoke prepare``; mounted with
    ``ns.add_collection(collection())`` it gives ``invoke cri.prepare``.
    """
    coll = Collection(name, *TASKS)
    coll.configure({"cri": merge(DEFAULTS, settings)})
    return coll


ns = collection()
