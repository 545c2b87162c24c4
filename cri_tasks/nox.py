"""Nox helpers: call cri-tasks from a noxfile session, with the same options and configuration as
the Invoke tasks.

.. code-block:: python

    import nox
    import cri_tasks.nox as cri

    @nox.session(venv_backend="none")
    def image(session: nox.Session) -> None:
        cri.validate(session)
        cri.prepare(session, setup="app")

Settings come from the same places as for ``invoke``: ``/etc/invoke.*``, ``~/.invoke.*``,
``invoke.*`` in the current directory (the noxfile's folder, or where ``session.chdir`` went),
``INVOKE_CRI_*`` variables and ``INVOKE_RUNTIME_CONFIG``. Keyword arguments win: ``settings={...}``
is deep-merged over that, then single settings given as keywords (``repository="r"``).

The helpers run in nox's own interpreter (no session venv is needed, hence ``venv_backend="none"``),
so cri-tasks must be installed next to nox: ``pip install cri-tasks[nox]`` in the environment that
runs nox, or ``pipx inject nox cri-tasks``. A :class:`~cri_tasks.errors.CriError` ends the session
with ``session.error(message)``: the message, no traceback. Progress goes to nox's log.

Nox itself is only imported for type checking, so this module (and ``import cri_tasks``) works
without it. The absolute ``import nox`` below is the real nox, never this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import api
from .config import load_settings
from .errors import CriError
from .results import Progress
from .settings import Settings, check_keys, merge
from .task_results import DeployCheck, TaskResult

if TYPE_CHECKING:
    import nox

    from .task_results import (
        Built,
        Cleaned,
        Deployed,
        Logs,
        Prepared,
        Rendered,
        Rollback,
        StatusReport,
        Stopped,
        Validation,
    )

__all__ = ["build", "clean", "deploy", "logs", "prepare", "render", "rollback", "status", "stop", "validate"]

FileArg = str | Path | None
SettingsArg = Settings | Mapping[str, Any] | None


def validate(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    settings: SettingsArg = None,
    **options: Any,
) -> Validation:
    """Validate zerops.yml (``file``, else cri.file, else zerops.yaml/zerops.yml) and log its setups."""
    with _session_errors(session):
        result = api.validate(file, setup=setup, settings=_settings(settings, options))
    return _logged(session, result)


def prepare(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    force: bool = False,
    no_cache: bool = False,
    explain: bool = False,
    check: bool = False,
    debug: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    settings: SettingsArg = None,
    **options: Any,
) -> Prepared:
    """Build the custom runtime image of each selected setup, unless nothing changed.

    The options are those of ``invoke prepare``; returns each setup's result (``.image``…).
    ``check=True``: build nothing, and fail the session when an image would be built.
    """
    with _session_errors(session):
        results = api.prepare(
            file,
            setup=setup,
            force=force or no_cache,  # as `invoke prepare --no-cache`
            no_cache=no_cache,
            explain=explain or check,
            debug=debug,
            settings=_settings(settings, options),
            report=_progress(session, quiet, verbose),
        )
    _logged(session, results)
    if check:
        _fail_if_would_build(session, results)
    return results


def _fail_if_would_build(session: nox.Session, results: Prepared) -> None:
    """Check mode: the session fails, as ``--check`` exits 2, when a runtime image would be built."""
    would = results.would_build()
    if would:
        session.error(f"the runtime image of {', '.join(would)} would be built")


def deploy(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    target: str | None = None,
    check: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    settings: SettingsArg = None,
    **options: Any,
) -> Deployed | DeployCheck:
    """Build, prepare and deploy each selected setup (as ``invoke deploy``); returns the results
    (``.urls``, ``.switch``…). ``check=True``: as ``deploy --check`` (the build, then whether the
    runtime image would be built; the session fails when it would)."""
    with _session_errors(session):
        results = api.deploy(
            file,
            setup=setup,
            settings=_settings(settings, _target(options, target)),
            report=_progress(session, quiet, verbose),
            check=check,
        )
    _logged(session, results)
    if isinstance(results, DeployCheck):
        _fail_if_would_build(session, results)
    return results


def build(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    quiet: bool = False,
    verbose: bool = False,
    settings: SettingsArg = None,
    **options: Any,
) -> Built:
    """The build phase of each selected setup (as ``invoke build``); returns the results
    (``.artifact``, ``.files``…)."""
    with _session_errors(session):
        results = api.build(
            file, setup=setup, settings=_settings(settings, options), report=_progress(session, quiet, verbose)
        )
    return _logged(session, results)


def rollback(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str,
    version: int | None = None,
    target: str | None = None,
    quiet: bool = False,
    verbose: bool = False,
    settings: SettingsArg = None,
    **options: Any,
) -> Rollback:
    """Activate an earlier version of ``setup`` (default: the one before the active one); the
    result reads as the version's ``DeployResult`` (``.version``, ``.urls``…)."""
    with _session_errors(session):
        result = api.rollback(
            file,
            setup=setup,
            version=version or None,
            settings=_settings(settings, _target(options, target)),
            report=_progress(session, quiet, verbose),
        )
    return _logged(session, result)


def status(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    target: str | None = None,
    settings: SettingsArg = None,
    **options: Any,
) -> StatusReport:
    """Setups, their active version, containers and health (as ``invoke status``)."""
    with _session_errors(session):
        result = api.status(file, setup=setup, settings=_settings(settings, _target(options, target)))
    return _logged(session, result)


def stop(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    target: str | None = None,
    settings: SettingsArg = None,
    **options: Any,
) -> Stopped:
    """Stop and remove the setups' containers and front proxy (versions and images are kept)."""
    with _session_errors(session):
        result = api.stop(file, setup=setup, settings=_settings(settings, _target(options, target)))
    return _logged(session, result)


def logs(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str,
    prepare: bool = False,
    build: bool = False,
    follow: bool = False,
    tail: int = 100,
    target: str | None = None,
    settings: SettingsArg = None,
    **options: Any,
) -> Logs:
    """A setup's container logs as (source, text), logged; ``prepare``/``build``: its last phase
    log instead; ``follow``: stream them to the terminal until interrupted."""
    with _session_errors(session):
        result = api.logs(
            file,
            setup=setup,
            tail=tail,
            follow=follow,
            phase="prepare" if prepare else "build" if build else None,
            settings=_settings(settings, _target(options, target)),
        )
    return _logged(session, result)


def _progress(session: nox.Session, quiet: bool, verbose: bool) -> Progress:
    """Progress to nox's log, at the level of ``--quiet``/``--verbose``."""
    if quiet and verbose:
        session.error("quiet and verbose ask for opposite things: give one")
    return Progress("quiet" if quiet else "verbose" if verbose else "normal", emit=session.log)


def _target(options: dict[str, Any], target: str | None) -> dict[str, Any]:
    """The keyword ``target`` is the setting ``cri.target``, as ``--target`` is for the tasks."""
    return {**options, "target": target} if target else options


def render(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    settings: SettingsArg = None,
    **options: Any,
) -> Rendered:
    """The Dockerfile prepare would build, per setup (logged and returned)."""
    with _session_errors(session):
        result = api.render(file, setup=setup, settings=_settings(settings, options))
    return _logged(session, result)


def clean(
    session: nox.Session,
    file: FileArg = None,
    *,
    setup: str | None = None,
    images: bool = False,
    settings: SettingsArg = None,
    **options: Any,
) -> Cleaned:
    """Forget prepared runtime images; ``images=True`` removes the images too."""
    with _session_errors(session):
        result = api.clean(file, setup=setup, images=images, settings=_settings(settings, options))
    return _logged(session, result)


Logged = TypeVar("Logged", bound=TaskResult)


def _logged(session: nox.Session, result: Logged) -> Logged:
    """Log a task's result as the command line prints it (its warnings as nox warnings), and
    return it."""
    for warning in result.warnings:
        session.warn(str(warning))
    for block in result.log_blocks():
        session.log(block)
    return result


def _settings(settings: SettingsArg, options: Mapping[str, Any]) -> Settings:
    """Invoke's config stack, then ``settings`` deep-merged, then single settings (None = keep)."""
    if isinstance(settings, Settings):
        if options:
            raise CriError(f"cri settings given both as a Settings object and as keywords: {', '.join(options)}")
        return settings
    check_keys(options)  # a typo gets its "did you mean", as in invoke.yaml
    given = {key: value for key, value in options.items() if value is not None}
    return load_settings(overrides=merge(dict(settings or {}), given))


#: Loggers that talk at DEBUG level: nox sets the root logger to DEBUG and prints every record,
#: so Invoke's config loading and python-on-whales' command lines would flood the session log
#: (nox silences its own noisy loggers the same way). INVOKE_DEBUG=1 keeps Invoke's.
NOISY_LOGGERS = ("invoke", "python_on_whales")


def _quiet_loggers() -> None:
    for name in NOISY_LOGGERS:
        if name == "invoke" and os.environ.get("INVOKE_DEBUG"):
            continue
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:  # a level the user chose is kept
            logger.setLevel(logging.WARNING)


@contextmanager
def _session_errors(session: nox.Session) -> Iterator[None]:
    """A CriError ends the session as "aborted" with its message (nox prints no traceback)."""
    _quiet_loggers()
    try:
        yield
    except CriError as exc:
        session.error(str(exc))
