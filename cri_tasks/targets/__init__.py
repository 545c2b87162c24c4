"""Deploy targets: where app versions run. A target takes a built app image and a resolved
environment and makes it the active version of a setup.

- :mod:`cri_tasks.targets.local` — this Docker engine: containers behind a front proxy.
- :mod:`cri_tasks.targets.swarm` — a Docker Swarm: services of one stack, images from a registry.

A new target is one module with a class that has the methods of :class:`Target`, registered in
:data:`TARGETS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..deploy_phase import Activation, Version
    from ..model import Project, Setup
    from ..results import Reporter
    from ..settings import Settings
    from ..workspace import Workspace


class Target(Protocol):
    def __init__(self, project: Project, settings: Settings, report: Reporter,
                 workspace: Workspace | None = None) -> None: ...

    def activate(self, setup: Setup, version: Version, env: dict[str, str], *, previous: Version | None) -> Activation: ...

    def status(self, setup: Setup) -> dict[str, Any]: ...

    def container_names(self, setup: Setup) -> list[str]: ...

    def logs(self, setup: Setup, *, tail: int | None = 100) -> list[tuple[str, str]]:
        """The setup's recent logs as (source, text): one per container, or one per Swarm service
        (every line prefixed with its task)."""
        ...

    def follow_logs(self, setup: Setup, *, tail: int = 50) -> int:
        """Stream the setup's logs to the terminal until interrupted; returns an exit code."""
        ...

    def stop(self, setup: Setup) -> list[str]: ...


def env_file_prefix(setup: str) -> str:
    """How the 0600 env files a target hands to docker (in ``<cache>/tmp``) are named. A target
    writes them only under the setup's deploy lock, so one found while holding that lock was
    left by a killed process (:func:`cri_tasks.deploy_phase.deploy` removes it)."""
    return f"env-{setup}."


def get(name: str) -> Any:
    from ..errors import ConfigError

    if name == "local":
        from .local import LocalTarget

        return LocalTarget
    if name == "swarm":
        from .swarm import SwarmTarget

        return SwarmTarget
    raise ConfigError(f"cri.target: unknown deploy target {name!r} (known: local, swarm)")
