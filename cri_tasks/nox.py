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
from typing import TYPE_CHECKING, Any

from . import api
from .config import load_settings
from .errors import CriError
from .settings import Settings, check_keys, merge

if TYPE_CHECKING:
    import nox

    from .api import Validation
    from .results import PrepareResult

__all__ = ["clean", "deploy", "prepare", "render", "validate"]

FileArg = str | Path | None
SettingsArg = Settings | Mapping[str, Any] | None


def validate(session: nox.Session, file: FileArg = None, *, setup: str | None = None,
             settings: SettingsArg = None, **options: Any) -> Validation:
    """Validate zerops.yml (``file``, else cri.file, else zerops.yaml/zerops.yml) and log its setups."""
    with _session_errors(session):
        result = api.validate(file, setup=setup, settings=_settings(settings, options))
    for warning in result.warnings:
        session.warn(str(warning))
    for line in result.lines():
        session.log(line)
    return result


def prepare(session: nox.Session, file: FileArg = None, *, setup: str | None = None, force: bool = False,
            no_cache: bool = False, explain: bool = False, debug: bool = False,
            settings: SettingsArg = None, **options: Any) -> list[PrepareResult]:
    """Build the custom runtime image of each selected setup, unless nothing changed.

    The options are those of ``invoke prepare``; returns each setup's result (``.image``…).
    """
    with _session_errors(session):
        results = api.prepare(
            file,
            setup=setup,
            force=force or no_cache,  # as `invoke prepare --no-cache`
            no_cache=no_cache,
            explain=explain,
            debug=debug,
            settings=_settings(settings, options),
            report=session.log,
        )
    for r in results:
        for line in r.lines():
            session.log(line)
    return results


def deploy(session: nox.Session, file: FileArg = None, *, setup: str | None = None, target: str | None = None,
           settings: SettingsArg = None, **options: Any) -> list[Any]:
    """Build, prepare and deploy each selected setup (as ``invoke deploy``); returns the results
    (``.urls``, ``.switch``…)."""
    if target:
        options["target"] = target
    with _session_errors(session):
        results = api.deploy(file, setup=setup, settings=_settings(settings, options), report=session.log)
    for r in results:
        for line in r.lines():
            session.log(line)
    return results


def render(session: nox.Session, file: FileArg = None, *, setup: str | None = None,
           settings: SettingsArg = None, **options: Any) -> dict[str, str]:
    """The Dockerfile prepare would build, per setup (logged and returned)."""
    with _session_errors(session):
        out = api.render(file, setup=setup, settings=_settings(settings, options))
    for name, text in out.items():
        session.log(f"Dockerfile of setup {name}:\n{text}")
    return out


def clean(session: nox.Session, file: FileArg = None, *, setup: str | None = None, images: bool = False,
          settings: SettingsArg = None, **options: Any) -> list[dict[str, Any]]:
    """Forget prepared runtime images; ``images=True`` removes the images too."""
    with _session_errors(session):
        out = api.clean(file, setup=setup, images=images, settings=_settings(settings, options))
    for line in api.clean_lines(out):
        session.log(line)
    return out


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
