"""Invoke tasks: thin adapters that read ``c.cri`` settings, map their options onto a call of
:mod:`cri_tasks.api`, print the result it returns (:mod:`cri_tasks.results`: its text, or its
document with ``--json``) and turn :class:`~cri_tasks.errors.CriError` into a clean exit (message
on stderr, no traceback).

Use :func:`collection` rather than a module-level collection that users ``configure()``:
``ns = collection()`` in a tasks.py gives top-level tasks, ``ns.add_collection(collection())``
gives ``cri.*`` tasks.
"""

from __future__ import annotations

import functools
import json as _json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from invoke import Collection, Context, Exit, Task, task

from . import api, output
from .config import tolerate_setting_types
from .errors import CriError
from .results import Progress
from .settings import DEFAULTS, Settings, declared, merge
from .task_results import TaskResult

#: The only short flags, one meaning in every task (and never a core option of ``cri``). Invoke
#: would give each option the first free letter of its name, so one letter meant different
#: things in different tasks (``-t``: ``--target`` or ``--tail``). After docker's habits:
#: ``-f`` is the file (``docker build -f``, ``docker compose -f``), so ``logs --follow`` has no
#: short flag (``docker logs -f`` would read as a file here); ``-n`` is ``--tail`` as in
#: ``docker logs -n``; ``-q`` and ``-v`` are quiet and verbose. Every other option is long only
#: (``--target``, ``--force``, ``--debug``...): a short flag that is not given cannot be misread.
SHORT_FLAGS: dict[str, str] = {
    "file": "f",
    "setup": "s",
    "json": "j",
    "tail": "n",
    "quiet": "q",
    "verbose": "v",
}


class CriTask(Task[Any]):
    """A Task whose short flags come from :data:`SHORT_FLAGS` instead of Invoke's first free letter."""

    def __init__(self, body: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["auto_shortflags"] = False
        super().__init__(body, **kwargs)

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        letter = SHORT_FLAGS.get(name)
        if letter is not None:
            opts["names"].append(letter)
        return opts


def cri_task(**kwargs: Any) -> Callable[[Callable[..., Any]], CriTask]:
    """``@task`` with the short flags of :data:`SHORT_FLAGS`."""
    return task(klass=CriTask, **kwargs)


COMMON_HELP = {
    "file": "zerops.yml to read (default: zerops.yaml, then zerops.yml, in the current folder or the "
    "nearest folder above it, up to the project's root)",
    "setup": "the setup to act on (default: every setup in the file)",
    "json": "print one JSON document on stdout, whatever the outcome (docs/json.md)",
}


#: the options of the tasks that act on what a deploy target runs
TARGET_HELP = {**COMMON_HELP, "target": "deploy target: local or swarm (default: cri.target)"}

#: the options of the tasks that build, which report progress on stderr
PROGRESS_HELP = {
    "quiet": "errors only: no progress on stderr, no result text on stdout (the exit code tells; "
    "--json still prints its document)",
    "verbose": "progress plain: also every line of BuildKit's log as it arrives, prefixed with the setup",
}

#: ``prepare --check``'s exit code when an image would be built (1 stays "it failed")
WOULD_BUILD_EXIT = 2


def settings_of(c: Context, **overrides: Any) -> Settings:
    """The ``cri`` settings of this call, deep-merged over the defaults (pyinvoke/invoke#782);
    arguments given on the command line (non-empty ``overrides``) win.

    When no zerops.yml was named and the one found is in a folder above the current one, a line
    on stderr says which file is used."""
    from .config import settings_from

    settings = settings_from(c.config, {name: value for name, value in overrides.items() if value not in (None, "")})
    if settings.file is None:
        from .paths import locate

        try:
            shown = locate(None, None)[1]
        except CriError:
            return settings  # the task reports it, with the rest of its errors
        if shown.startswith(".."):
            print(f"using {shown}", file=sys.stderr)
    return settings


def _exits(fn: Callable[..., TaskResult]) -> Callable[..., None]:
    """Print the task's result (its text, or its JSON document with ``--json``), exit with
    :data:`WOULD_BUILD_EXIT` when ``--check`` finds an image to build, and turn a CriError or an
    interrupt into invoke's Exit: the message on stderr, no traceback, and with ``--json`` the
    error document on stdout."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> None:
        as_json = bool(kwargs.get("json"))
        try:
            result = fn(c, *args, **kwargs)
        except (CriError, KeyboardInterrupt) as exc:
            if as_json:
                print_document(output.error_document(name, exc))
            if isinstance(exc, KeyboardInterrupt) or getattr(exc, "status", "") == output.INTERRUPTED:
                raise Exit(str(exc) if isinstance(exc, CriError) else "interrupted", code=130) from None
            raise Exit(str(exc), code=1) from None
        if as_json:
            print_document(result.as_json())
        elif not kwargs.get("quiet"):
            for note in result.notes():
                print(note, file=sys.stderr)
            for line in result.lines():
                _out(line)
        if kwargs.get("check") and result.document_status() == "would build":
            raise Exit(code=WOULD_BUILD_EXIT)

    return wrapper


def print_document(doc: Mapping[str, Any]) -> None:
    """The one JSON document of a call, on stdout."""
    _out(_json.dumps(doc, indent=2))


def print_error_document(task_name: str, exc: BaseException) -> None:
    """The JSON document of a call that failed before its task ran (an unreadable invoke.yaml)."""
    print_document(output.error_document(task_name, exc))


@contextmanager
def _progress(quiet: bool, verbose: bool) -> Iterator[Progress]:
    """The stderr reporter of a building task, at the level its flags ask for."""
    if quiet and verbose:
        raise CriError("--quiet and --verbose ask for opposite things: give one")
    progress = Progress("quiet" if quiet else "verbose" if verbose else "normal")
    try:
        yield progress
    finally:
        progress.close()


def _out(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `cri ... | head`: the reader is gone, which is no error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise Exit(code=141) from None  # 128 + SIGPIPE, as a shell reports it


@cri_task(help=COMMON_HELP)
@_exits
def validate(c: Context, file: str = "", setup: str = "", json: bool = False) -> TaskResult:
    """Validate zerops.yml and list its setups."""
    settings = settings_of(c, file=file)
    return api.validate(file or None, setup=setup or None, settings=settings)


@cri_task(
    help={
        **COMMON_HELP,
        "force": "build even when a matching image is recorded (BuildKit's layer cache still applies)",
        "no_cache": "build without BuildKit's layer cache (implies --force)",
        "explain": "say whether the image would be rebuilt and why, field by field; build nothing",
        "check": f"as --explain, and exit with code {WOULD_BUILD_EXIT} when an image would be built "
        "(0: every image is up to date, 1: an error)",
        "debug": "on a failing prepare command, open a shell in the state just before it",
        **PROGRESS_HELP,
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
    check: bool = False,
    debug: bool = False,
    json: bool = False,
    quiet: bool = False,
    verbose: bool = False,
) -> TaskResult:
    """Build the custom runtime image (run.prepareCommands), unless nothing changed."""
    with _progress(quiet, verbose) as report:
        return api.prepare(
            file or None,
            setup=setup or None,
            force=force or no_cache,
            no_cache=no_cache,
            explain=explain or check,
            debug=debug,
            settings=settings_of(c, file=file),
            report=report,
        )


@cri_task(help={**COMMON_HELP})
@_exits
def render(c: Context, file: str = "", setup: str = "", json: bool = False) -> TaskResult:
    """Print the Dockerfile that prepare would build."""
    return api.render(file or None, setup=setup or None, settings=settings_of(c, file=file))


@cri_task(help={**COMMON_HELP, "images": "also remove the images themselves"})
@_exits
def clean(c: Context, file: str = "", setup: str = "", images: bool = False, json: bool = False) -> TaskResult:
    """Forget prepared runtime images (Zerops' "Clear runtime prepare image")."""
    return api.clean(file or None, setup=setup or None, images=images, settings=settings_of(c, file=file))


@cri_task(
    help={
        "file": COMMON_HELP["file"],
        "setup": "the setup whose logs to show",
        "prepare": "the last runtime prepare log instead of the containers' logs",
        "build": "the last build log instead of the containers' logs",
        "follow": "keep streaming the containers' logs (text only, no --json)",
        "tail": "how many lines of each container's log (default 100)",
        "target": TARGET_HELP["target"],
        "json": COMMON_HELP["json"],
    }
)
@_exits
def logs(
    c: Context,
    file: str = "",
    setup: str = "",
    prepare: bool = False,
    build: bool = False,
    follow: bool = False,
    tail: int = 100,
    target: str = "",
    json: bool = False,
) -> TaskResult:
    """Show a setup's container logs, or its last prepare/build log."""
    if not setup:
        raise CriError("logs needs --setup NAME")
    settings = settings_of(c, file=file, target=target)
    phase = "prepare" if prepare else "build" if build else None
    if phase is None and follow and json:
        raise CriError("logs --follow streams text; it has no --json")
    result = api.logs(file or None, setup=setup, tail=tail, follow=follow, phase=phase, settings=settings)
    if phase is None and not follow and not result:
        raise CriError(f"[{setup}] nothing runs: deploy it first")
    return result


@cri_task(
    help={"file": COMMON_HELP["file"], "setup": COMMON_HELP["setup"], "json": COMMON_HELP["json"], **PROGRESS_HELP}
)
@_exits
def build(
    c: Context, file: str = "", setup: str = "", json: bool = False, quiet: bool = False, verbose: bool = False
) -> TaskResult:
    """Run the build phase (buildCommands) and assemble the deployFiles artifact."""
    with _progress(quiet, verbose) as report:
        return api.build(file or None, setup=setup or None, settings=settings_of(c, file=file), report=report)


@cri_task(
    help={
        **TARGET_HELP,
        "check": f"run the build phase, then say whether the runtime image would be built, as "
        f"prepare --check (exit code {WOULD_BUILD_EXIT} when it would); deploy nothing",
        **PROGRESS_HELP,
    }
)
@_exits
def deploy(
    c: Context,
    file: str = "",
    setup: str = "",
    json: bool = False,
    target: str = "",
    check: bool = False,
    quiet: bool = False,
    verbose: bool = False,
) -> TaskResult:
    """Build, prepare the runtime image and deploy into fresh containers (zero downtime)."""
    with _progress(quiet, verbose) as report:
        return api.deploy(
            file or None,
            setup=setup or None,
            settings=settings_of(c, file=file, target=target),
            check=check,
            report=report,
        )


@cri_task(
    help={
        "file": COMMON_HELP["file"],
        "setup": "the setup to roll back",
        "version": "the version to activate (default: the one before the active one)",
        "json": COMMON_HELP["json"],
        "target": TARGET_HELP["target"],
        **PROGRESS_HELP,
    }
)
@_exits
def rollback(
    c: Context,
    file: str = "",
    setup: str = "",
    version: int = 0,
    json: bool = False,
    target: str = "",
    quiet: bool = False,
    verbose: bool = False,
) -> TaskResult:
    """Activate an earlier version of a setup, with the same zero-downtime switch."""
    if not setup:
        raise CriError("rollback needs --setup NAME")
    with _progress(quiet, verbose) as report:
        return api.rollback(
            file or None,
            setup=setup,
            version=version or None,
            settings=settings_of(c, file=file, target=target),
            report=report,
        )


@cri_task(help=TARGET_HELP)
@_exits
def status(c: Context, file: str = "", setup: str = "", json: bool = False, target: str = "") -> TaskResult:
    """Show setups, their active version, containers and health, and the runtime image in use."""
    return api.status(file or None, setup=setup or None, settings=settings_of(c, file=file, target=target))


@cri_task(help=TARGET_HELP)
@_exits
def stop(c: Context, file: str = "", setup: str = "", json: bool = False, target: str = "") -> TaskResult:
    """Stop and remove a setup's containers and front proxy (versions and images are kept)."""
    return api.stop(file or None, setup=setup or None, settings=settings_of(c, file=file, target=target))


TASKS = (validate, prepare, render, clean, logs, build, deploy, rollback, status, stop)


tolerate_setting_types()


def collection(name: str = "cri", **settings: Any) -> Collection:
    """A fresh collection of the cri-tasks tasks, with every setting declared (defaults + overrides).

    ``ns = collection()`` in a tasks.py gives ``invoke prepare``; mounted with
    ``ns.add_collection(collection())`` it gives ``invoke cri.prepare``.
    """
    coll = Collection(name, *TASKS)
    coll.configure({"cri": declared(merge(DEFAULTS, settings))})
    return coll


ns = collection()
