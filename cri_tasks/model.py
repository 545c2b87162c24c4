"""The zerops.yml model: typed, frozen objects, built by :mod:`cri_tasks.loader`.

Everything a later phase may have to point at (a command, a path, a port) carries the
:class:`~cri_tasks.errors.Location` it came from, so a failure can name ``zerops.yml:17``
even when the value was inherited through ``extends``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Location, Problem

DEFAULT_OS = "alpine"
OS_CHOICES = ("alpine", "ubuntu")


@dataclass(frozen=True)
class Command:
    """One list item of a *Commands key; a ``- |`` block is one command (one shell)."""

    text: str
    path: str  # field path, e.g. "zerops[0].run.prepareCommands[1]"
    location: Location


@dataclass(frozen=True)
class PathRef:
    """A path written in zerops.yml (addToRunPrepare, deployFiles, cache, envReplace.target)."""

    value: str
    path: str
    location: Location


@dataclass(frozen=True)
class HttpGet:
    port: int
    path: str
    host: str | None = None
    scheme: str | None = None


@dataclass(frozen=True)
class ReadinessCheck:
    """deploy.readinessCheck: exactly one of http_get / exec."""

    http_get: HttpGet | None = None
    exec: Command | None = None
    retry_period: float = 5.0
    failure_timeout: float = 300.0


@dataclass(frozen=True)
class HealthCheck:
    """run.healthCheck: exactly one of http_get / exec, plus optional timings (seconds)."""

    http_get: HttpGet | None = None
    exec: Command | None = None
    failure_timeout: float | None = None
    disconnect_timeout: float | None = None
    recovery_timeout: float | None = None
    exec_period: float | None = None


@dataclass(frozen=True)
class Port:
    port: int
    protocol: str = "tcp"  # lower-cased
    http_support: bool = False
    description: str | None = None
    location: Location | None = None


@dataclass(frozen=True)
class StartCommand:
    command: Command
    name: str | None = None
    working_dir: str | None = None
    init_commands: tuple[Command, ...] = ()


@dataclass(frozen=True)
class EnvReplace:
    delimiters: tuple[str, ...]
    targets: tuple[PathRef, ...]


@dataclass(frozen=True)
class Cron:
    timing: str
    command: Command
    all_containers: bool
    working_dir: str | None = None


@dataclass(frozen=True)
class Build:
    base: tuple[str, ...] = ()
    os: str = DEFAULT_OS
    prepare_commands: tuple[Command, ...] = ()
    build_commands: tuple[Command, ...] = ()
    deploy_files: tuple[PathRef, ...] = ()
    # True/False, or the list of paths relative to /build/source
    cache: bool | tuple[PathRef, ...] = False
    add_to_run_prepare: tuple[PathRef, ...] = ()
    env_variables: Mapping[str, str] = field(default_factory=dict)
    location: Location | None = None
    # where each key's value was written ("base", "envVariables.NAME", ...)
    field_locations: Mapping[str, Location] = field(default_factory=dict)

    def where(self, key: str) -> Location | None:
        return self.field_locations.get(key, self.location)


@dataclass(frozen=True)
class Run:
    base: str | None = None
    os: str = DEFAULT_OS
    prepare_commands: tuple[Command, ...] = ()
    init_commands: tuple[Command, ...] = ()
    start: Command | None = None
    start_commands: tuple[StartCommand, ...] = ()
    ports: tuple[Port, ...] = ()
    env_variables: Mapping[str, str] = field(default_factory=dict)
    env_replace: EnvReplace | None = None
    health_check: HealthCheck | None = None
    crontab: tuple[Cron, ...] = ()
    # Webserver/static runtimes only: parsed and kept, no behaviour for Gleam.
    document_root: str | None = None
    site_config_path: str | None = None
    routing: Mapping[str, Any] | None = None
    location: Location | None = None
    # where each key's value was written ("base", "envVariables.NAME", ...)
    field_locations: Mapping[str, Location] = field(default_factory=dict)

    def where(self, key: str) -> Location | None:
        return self.field_locations.get(key, self.location)


@dataclass(frozen=True)
class Deploy:
    temporary_shutdown: bool = False
    readiness_check: ReadinessCheck | None = None


@dataclass(frozen=True)
class Setup:
    """One entry of ``zerops:`` after ``extends`` was applied."""

    name: str
    index: int  # position in the file's zerops list
    run: Run
    deploy: Deploy
    build: Build | None = None
    extends: tuple[str, ...] = ()
    location: Location | None = None


@dataclass(frozen=True)
class Project:
    """A loaded zerops.yml: its setups in file order, and the warnings it produced."""

    file: Path
    setups: tuple[Setup, ...]
    warnings: tuple[Problem, ...] = ()

    @property
    def root(self) -> Path:
        """The project directory (the folder that holds zerops.yml)."""
        return self.file.parent

    def setup_names(self) -> list[str]:
        return [s.name for s in self.setups]

    def select(self, name: str | None = None) -> list[Setup]:
        """The setups a task acts on: the named one, or all of them."""
        if name is None:
            return list(self.setups)
        for s in self.setups:
            if s.name == name:
                return [s]
        from .errors import ConfigError

        raise ConfigError(f"{self.file.name}: no setup named {name!r}; available: {', '.join(self.setup_names())}")
