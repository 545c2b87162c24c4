"""cri-tasks: the Zerops build pipeline for Gleam apps, on your own Docker hosts.

Public surface (imported lazily, so ``import cri_tasks`` stays cheap):

- :func:`collection` — the Invoke collection factory (``ns = collection()`` in a tasks.py);
- :func:`validate`, :func:`prepare`, :func:`render`, :func:`clean`, :func:`log_path`,
  :func:`build`, :func:`deploy`, :func:`rollback`, :func:`status`, :func:`stop` — the plain
  Python API that every adapter calls;
- :class:`CriError` and its subclasses, :class:`Settings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = [
    "CriError",
    "ConfigError",
    "EngineError",
    "StepFailed",
    "Settings",
    "__version__",
    "build",
    "clean",
    "collection",
    "deploy",
    "load",
    "log_path",
    "prepare",
    "render",
    "rollback",
    "status",
    "stop",
    "validate",
]

_LAZY = {
    "collection": ("tasks", "collection"),
    "validate": ("api", "validate"),
    "prepare": ("api", "prepare"),
    "render": ("api", "render"),
    "clean": ("api", "clean"),
    "load": ("api", "load"),
    "log_path": ("api", "log_path"),
    "build": ("api", "build"),
    "deploy": ("api", "deploy"),
    "rollback": ("api", "rollback"),
    "status": ("api", "status"),
    "stop": ("api", "stop"),
    "CriError": ("errors", "CriError"),
    "ConfigError": ("errors", "ConfigError"),
    "EngineError": ("errors", "EngineError"),
    "StepFailed": ("errors", "StepFailed"),
    "Settings": ("settings", "Settings"),
}

if TYPE_CHECKING:
    from .api import build, clean, deploy, load, log_path, prepare, render, rollback, status, stop, validate
    from .errors import ConfigError, CriError, EngineError, StepFailed
    from .settings import Settings
    from .tasks import collection


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cri_tasks' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value
