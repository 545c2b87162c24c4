"""Invoke's configuration stack for the entry points Invoke does not start itself.

``invoke`` builds its configuration from, lowest to highest: the collection's defaults,
``/etc/invoke.*``, ``~/.invoke.*``, the project's ``invoke.*``, ``INVOKE_*`` environment variables
and the runtime file (``-f`` / ``INVOKE_RUNTIME_CONFIG``). The Nox helpers and the ``cri`` program
read the very same files and variables, so one ``invoke.yaml`` with a ``cri:`` key configures all
three ways in.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from invoke import Config
from invoke.exceptions import AmbiguousEnvVar, UncastableEnvVar
from invoke.util import yaml as invoke_yaml

from .errors import ConfigError
from .settings import DEFAULTS, Settings, declared, merge, resolve

__all__ = ["CriConfig", "load_config", "load_settings", "settings_from", "tolerate_setting_types"]


def _merge_settings(base: dict[str, Any], updates: Mapping[str, Any]) -> None:
    """Invoke's merge for the ``cri`` subtree, except that a value of another type replaces the
    one below it instead of raising: :func:`~cri_tasks.settings.resolve` then names the setting
    and what it expects, inside the task (and in its --json document)."""
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_settings(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def tolerate_setting_types() -> None:
    """Let ``cri: {images: [a]}`` (or ``cri: 5``) in a config file reach cri-tasks' own checks.

    Invoke merges its configuration levels with ``invoke.config.merge_dicts``, which raises
    AmbiguousMergeError when a level holds a mapping and another a non-mapping for one key; it
    does so in ``Program.run`` before any task starts, where nothing catches it: the user got a
    traceback. The wrapper merges the ``cri`` key with :func:`_merge_settings` and leaves every
    other key to Invoke. Idempotent."""
    import invoke.config as invoke_config

    original = invoke_config.merge_dicts
    if getattr(original, "_cri_settings", False):
        return

    def merge_dicts(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
        if isinstance(updates, dict) and "cri" in updates and "cri" in base:
            updates = dict(updates)
            cri = updates.pop("cri")
            if isinstance(cri, dict) and isinstance(base["cri"], dict):
                _merge_settings(base["cri"], cri)
            else:
                base["cri"] = copy.deepcopy(cri)
        return original(base, updates)

    merge_dicts._cri_settings = True  # type: ignore[attr-defined]
    invoke_config.merge_dicts = merge_dicts


class CriConfig(Config):
    """Invoke's :class:`~invoke.Config` whose project folder defaults to the current directory.

    The prefix stays ``invoke`` on purpose: files are ``invoke.yaml`` (not ``cri.yaml``) and
    variables ``INVOKE_CRI_*`` (not ``CRI_*``), as for ``invoke`` itself. A :class:`~invoke.Program`
    with a bundled namespace (the ``cri`` program) never loads project files, since it does not
    search for a tasks module, so this class loads them when it is created.
    """

    def __init__(
        self, *, project_location: str | os.PathLike[str] | None = None, lazy: bool = False, **kwargs: Any
    ) -> None:
        location = Path(project_location) if project_location is not None else Path.cwd()
        with _readable():
            super().__init__(project_location=location, lazy=lazy, **kwargs)
            if not lazy:  # clone() creates lazy instances, then copies every loaded level over
                self.load_project()


def load_config(project_dir: str | os.PathLike[str] | None = None) -> Config:
    """The configuration ``invoke`` would give a task of :func:`cri_tasks.collection`, for a
    tasks.py in ``project_dir`` (default: the current directory).

    Raises :class:`~cri_tasks.errors.ConfigError` for an unreadable config file or environment
    variable, instead of a traceback.
    """
    location = Path(project_dir) if project_dir is not None else Path.cwd()
    with _readable():
        config = CriConfig(project_location=location)  # /etc, ~ and project files
        # Every key declared, for INVOKE_CRI_*: what the collection of cri_tasks.tasks.collection()
        # declares, spelled from the settings so that this module does not import the adapter.
        config.load_collection({"cri": declared(merge(DEFAULTS, {}))})
        runtime = os.environ.get("INVOKE_RUNTIME_CONFIG")
        config.set_runtime_path(Path(runtime) if runtime else None)
        config.load_runtime(merge=False)
        try:
            config.load_shell_env()
        except ValueError as exc:  # INVOKE_CRI_PARALLEL=abc: int("abc") in Invoke's cast
            raise ConfigError(f"invoke configuration from the environment (INVOKE_CRI_*): {exc}") from None
    return config


@contextmanager
def _readable() -> Iterator[None]:
    """A broken config file or variable is the user's input: a ConfigError, not a traceback."""
    try:
        yield
    except invoke_yaml.YAMLError as exc:
        raise ConfigError(f"invoke configuration: {exc}") from None
    except (AmbiguousEnvVar, UncastableEnvVar) as exc:
        raise ConfigError(f"invoke configuration from the environment: {exc}") from None


def settings_from(config: Config | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Settings:
    """The ``cri`` settings of a merged configuration, deep-merged over the defaults, then
    ``overrides`` deep-merged on top.

    The deep merge over :data:`~cri_tasks.settings.DEFAULTS` matters: Invoke merges collection
    configuration shallowly across collection levels (pyinvoke/invoke#782), so a user's root
    ``ns.configure({"cri": {...}})`` can arrive without the plugin's other keys.
    """
    raw = config.get("cri", {}) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"cri: expected a mapping of settings, got {raw!r:.60}")
    return resolve(merge(dict(raw), dict(overrides or {})))


def load_settings(
    project_dir: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """:func:`load_config` then :func:`settings_from`: what a call from outside Invoke uses."""
    return settings_from(load_config(project_dir), overrides)
