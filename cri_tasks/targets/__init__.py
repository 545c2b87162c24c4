"""Deploy targets: where app versions run. A target takes a built app image and a resolved
environment and makes it the active version of a setup.

- :mod:`cri_tasks.targets.local` — this Docker engine: containers behind a front proxy.

A new target is one module with a class that has the methods of :class:`Target`, registered in
:data:`TARGETS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..deploy_phase import Activation, Version
    from ..model import Project, Setup
    from ..runtime_image import Reporter
    from ..settings import Settings


class Target(Protocol):
    def __init__(self, project: Project, settings: Settings, report: Reporter) -> None: ...

    def activate(self, setup: Setup, version: Version, env: dict[str, str], *, previous: Version | None) -> Activation: ...

    def status(self, setup: Setup) -> dict[str, Any]: ...

    def container_names(self, setup: Setup) -> list[str]: ...

    def stop(self, setup: Setup) -> list[str]: ...


def get(name: str) -> type[Target]:
    from ..errors import ConfigError

    if name == "local":
        from .local import LocalTarget

        return LocalTarget
    raise ConfigError(f"cri.target: unknown deploy target {name!r} (known: local)")
