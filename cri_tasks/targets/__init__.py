"""Deploy targets: where app versions run. A target takes a built app image and a resolved
environment and makes it the active version of a setup.

- :mod:`cri_tasks.targets.base` — the :class:`Target` protocol and the types a target is handed
  and returns (:class:`Version`, :class:`Activation`), below both targets and the deploy phase.
- :mod:`cri_tasks.targets.proxy` — the front proxy (HAProxy): its image and its configuration.
- :mod:`cri_tasks.targets.local` — this Docker engine: containers behind a front proxy.
- :mod:`cri_tasks.targets.swarm` — a Docker Swarm: services of one stack, images from a registry.

A new target is one module with a class that has the members of :class:`Target`, returned by
:func:`get`. Nothing here imports :mod:`cri_tasks.deploy_phase`: it drives the targets.
"""

from __future__ import annotations

from .base import Activation, Target, Version, env_file_prefix

__all__ = ["Activation", "Target", "Version", "env_file_prefix", "get"]


def get(name: str) -> type[Target]:
    """The target class ``cri.target`` names; a ConfigError for an unknown name."""
    from ..errors import ConfigError

    if name == "local":
        from .local import LocalTarget

        return LocalTarget
    if name == "swarm":
        from .swarm import SwarmTarget

        return SwarmTarget
    raise ConfigError(f"cri.target: unknown deploy target {name!r} (known: local, swarm)")
