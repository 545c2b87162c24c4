"""What the tasks return: one typed result per task.

One convention for every task: each function of :mod:`cri_tasks.api` returns a
:class:`TaskResult`, whose ``as_json()`` is the one document ``--json`` prints (its shape is
owned by :mod:`cri_tasks.output`) and whose ``lines()`` is the text printed without ``--json``.
The adapters (the Invoke tasks, ``cri``, the Nox helpers) only print what these say; none of them
formats a result.

A task result reads as what the API returned before results had a type of their own: a list of
per-setup results (:class:`~cri_tasks.results.PrepareResult`, ``DeployResult``, ``BuildResult``)
or of the target's status entries, the Dockerfiles by setup, the one version a rollback
activated. Python callers index, unpack and compare it as before.

It stands on the API's floor, above the phases whose per-setup results it carries (imported for
type checking only); :mod:`cri_tasks.results` keeps what the phases themselves report with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from . import output
from .errors import Problem
from .results import PrepareResult

if TYPE_CHECKING:
    from .build_phase import BuildResult
    from .deploy_phase import DeployResult
    from .model import Project


class SetupResult(Protocol):
    """A result of one setup: its entry of the ``--json`` document, in the phase's own words
    (``ACTIVE``, ``BUILD_FAILED``...: :func:`cri_tasks.output.setup_entry` turns them into the
    document's vocabulary), and its text."""

    def as_json(self) -> dict[str, Any]: ...

    def lines(self) -> list[str]: ...


class TaskResult:
    """What a task did. Subclasses name their ``task`` and say what each setup's entry and text is;
    the document around the entries is the same for every task."""

    #: the task's name in the document
    task: ClassVar[str] = ""

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """Problems that did not stop the task (zerops.yml's warnings, for validate)."""
        return ()

    def entries(self) -> list[dict[str, Any]]:
        """One entry per setup the task acted on, in zerops.yml's order, before the document's
        vocabulary is applied."""
        raise NotImplementedError

    def document_status(self) -> str:
        """The status of the whole document: ``ok``, or ``would build`` for a check."""
        return "ok"

    def as_json(self) -> dict[str, Any]:
        """The one document ``--json`` prints."""
        return output.document(
            self.task,
            status=self.document_status(),
            warnings=self.warnings,
            setups=[output.setup_entry(entry) for entry in self.entries()],
            **self._document_fields(),
        )

    def lines(self) -> list[str]:
        """The text printed on stdout without ``--json``, one print per item."""
        raise NotImplementedError

    def notes(self) -> list[str]:
        """What the text mode says on stderr beside the result (never with ``--json``)."""
        return [str(warning) for warning in self.warnings]

    def log_blocks(self) -> list[str]:
        """The text as messages of a log that prefixes each one (Nox's): the same as
        :meth:`lines`, except where a block of text reads better under one title."""
        return self.lines()

    def _document_fields(self) -> dict[str, Any]:
        """Fields of the document besides the common ones (validate's ``file``)."""
        return {}


@dataclass(frozen=True)
class Validation(TaskResult):
    """A valid zerops.yml (``validate``): the loaded project, restricted to the selected setup."""

    project: Project
    task: ClassVar[str] = "validate"

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return self.project.warnings

    def entries(self) -> list[dict[str, Any]]:
        return [
            {
                "setup": setup.name,
                "os": setup.run.os,
                "base": setup.run.base,
                "prepareCommands": len(setup.run.prepare_commands),
                "buildCommands": len(setup.build.build_commands) if setup.build else 0,
                "status": "valid",
            }
            for setup in self.project.setups
        ]

    def lines(self) -> list[str]:
        out = [f"{self.project.file}: valid, {len(self.project.setups)} setup(s)"]
        for entry in self.entries():
            out.append(
                f"  {entry['setup']}: run.os={entry['os']} run.base={entry['base']} "
                f"prepareCommands={entry['prepareCommands']} buildCommands={entry['buildCommands']}"
            )
        return out

    def _document_fields(self) -> dict[str, Any]:
        return {"file": str(self.project.file)}


Result = TypeVar("Result", bound=SetupResult)


class SetupResults(TaskResult, list[Result], Generic[Result]):
    """A task whose setups each have a result with its own entry and text."""

    def entries(self) -> list[dict[str, Any]]:
        return [result.as_json() for result in self]

    def lines(self) -> list[str]:
        return [line for result in self for line in result.lines()]


class Prepared(SetupResults[PrepareResult]):
    """``prepare``: each setup's runtime image, built, up to date, or (``--explain``, ``--check``)
    what would be built and why."""

    task: ClassVar[str] = "prepare"

    def would_build(self) -> list[str]:
        """The setups whose runtime image would be built (``--explain``, ``--check``)."""
        return [result.setup for result in self if result.status == "would build"]

    def document_status(self) -> str:
        return "would build" if self.would_build() else "ok"


class DeployCheck(Prepared):
    """``deploy --check``: the build ran; whether each runtime image would be built, as ``prepare --check``."""

    task: ClassVar[str] = "deploy"


class Deployed(SetupResults["DeployResult"]):
    """``deploy``: the version each setup now runs."""

    task: ClassVar[str] = "deploy"


@dataclass(frozen=True)
class Rollback(TaskResult):
    """``rollback``: the version the setup went back to. Reads as that ``DeployResult``
    (``.version``, ``.urls``...), which the API returned before this type."""

    result: DeployResult
    task: ClassVar[str] = "rollback"

    def entries(self) -> list[dict[str, Any]]:
        return [self.result.as_json()]

    def lines(self) -> list[str]:
        return self.result.lines()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "result":  # copy and pickle look before `result` is set
            raise AttributeError(name)
        return getattr(self.result, name)


class Built(TaskResult, list["BuildResult"]):
    """``build``: each setup's artifact."""

    task: ClassVar[str] = "build"

    def entries(self) -> list[dict[str, Any]]:
        return [
            {
                "setup": result.setup,
                "status": "built",
                "files": result.files,
                "seconds": round(result.seconds, 3),
                "artifact": str(result.artifact),
                "log": result.log,
            }
            for result in self
        ]

    def lines(self) -> list[str]:
        return [f"{result.setup}: built, {result.files} file(s) in {result.artifact}" for result in self]


class Rendered(TaskResult, dict[str, str]):
    """``render``: the Dockerfile prepare would build, by setup."""

    task: ClassVar[str] = "render"

    def entries(self) -> list[dict[str, Any]]:
        return [{"setup": setup, "status": "rendered", "dockerfile": text} for setup, text in self.items()]

    def lines(self) -> list[str]:
        out = []
        for index, (setup, text) in enumerate(self.items()):
            if len(self) > 1:
                out.append(("\n" if index else "") + f"# ---- setup {setup} ----")
            out.append(text.rstrip("\n"))
        return out

    def log_blocks(self) -> list[str]:
        return [f"Dockerfile of setup {setup}:\n{text}" for setup, text in self.items()]


class Cleaned(TaskResult, list[dict[str, Any]]):
    """``clean``: per setup, how many records were forgotten (``forgotten``) and which images removed
    (``removed``)."""

    task: ClassVar[str] = "clean"

    def entries(self) -> list[dict[str, Any]]:
        return [{**entry, "status": "forgotten"} for entry in self]

    def lines(self) -> list[str]:
        out = []
        for entry in self:
            removed = f", removed {', '.join(entry['removed'])}" if entry["removed"] else ""
            out.append(f"{entry['setup']}: forgot {entry['forgotten']} record(s){removed}")
        return out


class StatusReport(TaskResult, list[dict[str, Any]]):
    """``status``: per setup, the active version, the kept ones, and what the target reports
    (containers, URLs, the target's own fields: docs/json.md)."""

    task: ClassVar[str] = "status"

    def entries(self) -> list[dict[str, Any]]:
        return [{**entry, "status": "deployed" if entry["active_version"] else "not deployed"} for entry in self]

    def lines(self) -> list[str]:
        out = []
        for entry in self:
            kept = ", ".join(map(str, entry["versions"])) or "-"
            out.append(
                f"{entry['setup']}: active version {entry['active_version'] or '-'} "
                f"(kept: {kept}); runtime image {entry['runtime_image'] or '-'}"
            )
            for container in entry["containers"]:
                health = f", {container['health']}" if container.get("health") else ""
                node = f" on {container['node']}" if container.get("node") else ""
                out.append(
                    f"  {container['name']}{node}: {container['status']}{health} (version {container['version']})"
                )
            down = [node for node, state in (entry.get("node_states") or {}).items() if state != "ready"]
            if down:
                out.append(f"  swarm nodes not ready: {', '.join(sorted(down))}")
            out.extend(f"  {url}" for url in entry["urls"])
        return out


class Stopped(TaskResult, list[dict[str, Any]]):
    """``stop``: per setup, the containers removed (``removed``)."""

    task: ClassVar[str] = "stop"

    def entries(self) -> list[dict[str, Any]]:
        return [{**entry, "status": "stopped"} for entry in self]

    def lines(self) -> list[str]:
        return [f"{entry['setup']}: removed {len(entry['removed'])} container(s)" for entry in self]


class Logs(TaskResult, list[tuple[str, str]]):
    """``logs``: a setup's logs as (source, text): its containers' (the source is the container),
    or its last prepare or build log (``log_file``: the source is that file)."""

    task: ClassVar[str] = "logs"

    def __init__(self, setup: str, sources: Iterable[tuple[str, str]] = (), *, log_file: Path | None = None) -> None:
        super().__init__(sources)
        self.setup = setup
        self.log_file = log_file

    def entries(self) -> list[dict[str, Any]]:
        if not self:  # --follow streamed them
            return []
        return [
            {
                "setup": self.setup,
                "status": "read",
                "sources": [{"source": source, "text": text} for source, text in self],
            }
        ]

    def lines(self) -> list[str]:
        out = []
        for source, text in self:
            if self.log_file is None:  # one log file is shown as it is; its name goes to stderr
                out.append(f"==> {source} <==")
            if text:
                out.append(text.rstrip("\n"))
        return out

    def notes(self) -> list[str]:
        return [] if self.log_file is None else [f"# {self.log_file}"]

    def log_blocks(self) -> list[str]:
        return [f"==> {source} <==\n{text}" for source, text in self]
