"""What a deploy target is and what it is handed: the floor both targets and the deploy phase
stand on.

:mod:`cri_tasks.deploy_phase` decides which version runs and keeps the records; a target (local,
swarm) makes a version run. Both need the same words for it: a :class:`Version`, the
:class:`Activation` a target returns, the :class:`Target` protocol itself, the failure a target
raises (:func:`deploy_error`) and the commands a readiness or health check runs
(:func:`check_command`, :class:`HealthTimings`). They live here, below both, so that a target
never imports the module that drives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import CommandFailure, StepFailed
from ..model import HealthCheck, HttpGet
from ..records import VersionRecord

if TYPE_CHECKING:
    from ..model import Project, Setup
    from ..probe import SwitchReport
    from ..results import Reporter
    from ..settings import Settings
    from ..workspace import Workspace

DEPLOY_FAILED = "DEPLOY_FAILED"


#: One app version of a setup, as its deploy record lists it: the record type itself
#: (:class:`cri_tasks.records.VersionRecord`), which the targets are handed as it is.
Version = VersionRecord


@dataclass(frozen=True)
class Activation:
    """What a target reports after a version became the one that serves."""

    containers: list[str]
    urls: list[str]
    switch: SwitchReport | None


class Target(Protocol):
    """A place where app versions run. A new target is a class with these members, returned by
    :func:`cri_tasks.targets.get`."""

    #: True when a deploy of several setups must land for all of them or for none: after a
    #: failure, :func:`cri_tasks.deploy_phase.deploy` returns the setups it already activated.
    all_or_nothing: ClassVar[bool]

    def __init__(
        self, project: Project, settings: Settings, report: Reporter, workspace: Workspace | None = None
    ) -> None: ...

    def activate(self, setup: Setup, version: Version, env: dict[str, str], *, previous: Version | None) -> Activation:
        """Make ``version`` the one that serves, or raise (:func:`deploy_error`) leaving
        ``previous`` serving."""
        ...

    def running_version(self, setup: Setup, recorded: int | None) -> int | None:
        """The version that serves now, for :func:`cri_tasks.deploy_phase.reconcile`; None when
        that cannot be told. ``recorded`` is the one the records call active."""
        ...

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


def deploy_error(setup: Setup, what: str, container_log: str) -> StepFailed:
    """A failed activation: ``what`` went wrong, with the last lines of the container's log."""
    tail = container_log.rstrip().splitlines()[-15:]
    failure = CommandFailure(setup.name, "deploy", None, what, None, None, tail, None)
    headline = f"[{setup.name}] {DEPLOY_FAILED}: {what}\n  the previous version keeps serving"
    return StepFailed(failure, status=DEPLOY_FAILED, headline=headline)


def check_command(http_get: HttpGet | None, exec_text: str | None) -> str:
    """A readiness or health check as one shell command run inside the container."""
    if http_get is not None:
        url = f"{http_get.scheme or 'http'}://127.0.0.1:{http_get.port}{http_get.path}"
        header = f" -H 'Host: {http_get.host}'" if http_get.host else ""
        return f"curl -fsS -o /dev/null -L --max-time 5{header} '{url}'"
    assert exec_text is not None
    return exec_text


@dataclass(frozen=True)
class HealthTimings:
    """run.healthCheck's timings in seconds, with the defaults cri-tasks applies."""

    period: float
    failure: float  # failing this long: the container is restarted
    disconnect: float  # failing this long: out of the front proxy's rotation (httpGet checks)
    recovery: float  # passing this long again: back in rotation

    @classmethod
    def of(cls, check: HealthCheck) -> HealthTimings:
        period = float(check.exec_period or 5)
        failure = float(check.failure_timeout or 30)
        disconnect = float(check.disconnect_timeout) if check.disconnect_timeout else min(failure, 2 * period)
        recovery = float(check.recovery_timeout) if check.recovery_timeout else period
        return cls(period, failure, disconnect, recovery)

    def checks(self, span: float) -> int:
        """How many checks, one per period, cover ``span`` seconds (at least one)."""
        return max(1, int(-(-span // self.period)))
