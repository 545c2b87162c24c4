"""The documents ``--json`` prints: one owner for their shape (``docs/json.md``, checked against
``docs/cri-output.schema.json`` by the tests). A task's result (:mod:`cri_tasks.task_results`) makes
its document with :func:`document`; a failed call's comes from :func:`error_document`.

Every task prints exactly one document on stdout, whatever the outcome::

    {"schema": 1, "task": "prepare", "status": "ok", "setups": [...], "errors": [], "warnings": []}

``status`` is one of :data:`DOCUMENT_STATUSES`; each setup's ``status`` one of
:data:`SETUP_STATUSES`; an error is an object (:func:`error_objects`), never preformatted text.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ConfigError, CriError, EngineError, Problem, StepFailed

#: the version of the document's shape; raised when a field changes meaning or goes away
SCHEMA_VERSION = 1

#: the outcome of the whole call
DOCUMENT_STATUSES = ("ok", "would build", "failed", "interrupted")

#: the outcome for one setup
SETUP_STATUSES = (
    "valid",
    "rendered",
    "up to date",
    "would build",
    "built",
    "active",
    "rolled back",
    "failed",
    "forgotten",
    "stopped",
    "deployed",
    "not deployed",
    "read",
    "skipped",
)

#: Zerops-style words the phases use, as the vocabulary above (the failure words become the
#: setup's ``error``)
_WORDS = {"BUILT": "built", "ACTIVE": "active", "ROLLED_BACK": "rolled back", "SKIPPED": "skipped"}

#: what ``error.kind`` is when the exception carries no Zerops word of its own
INTERRUPTED = "INTERRUPTED"


def document(
    task: str,
    *,
    status: str = "ok",
    setups: Sequence[Mapping[str, Any]] = (),
    errors: Sequence[Mapping[str, Any]] = (),
    warnings: Iterable[Problem] = (),
    **extra: Any,
) -> dict[str, Any]:
    """One ``--json`` document."""
    if status not in DOCUMENT_STATUSES:
        raise ValueError(f"unknown document status {status!r}")
    return {
        "schema": SCHEMA_VERSION,
        "task": task,
        "status": status,
        **extra,
        "setups": [dict(entry) for entry in setups],
        "errors": list(errors),
        "warnings": [problem_object(warning) for warning in warnings],
    }


def setup_entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A phase's ``as_json()`` entry in the common vocabulary: a failure word (``BUILD_FAILED``…)
    becomes ``status: failed`` with the word as ``error``; the message lives in ``errors``."""
    out = dict(raw)
    word = str(out.get("status", ""))
    if word in SETUP_STATUSES:
        out.setdefault("error", None)
        if out["error"] is not None and word != "failed":
            out["error"] = None
        return out
    if word in _WORDS:
        out["status"] = _WORDS[word]
        out["error"] = None
        return out
    out["status"] = "failed"
    out["error"] = word or "FAILED"
    return out


def error_document(task: str, exc: BaseException) -> dict[str, Any]:
    """The document of a call that ended with ``exc`` (a CriError or KeyboardInterrupt); its
    setups are the per-setup results the exception carries (``PrepareFailed.results``,
    ``DeployFailed.results``: every setup's outcome), if any."""
    status = "interrupted" if _kind(exc) == INTERRUPTED else "failed"
    results = getattr(exc, "results", None) or ()
    return document(
        task, status=status, setups=[setup_entry(result.as_json()) for result in results], errors=error_objects(exc)
    )


def error_objects(exc: BaseException) -> list[dict[str, Any]]:
    """Every error an exception carries, as objects with the same keys (None where unknown)."""
    if isinstance(exc, ConfigError):
        return [problem_object(problem, kind=exc.status) for problem in exc.problems]
    inner = getattr(exc, "errors", None)  # PrepareFailed, DeployFailed: one error per setup
    if isinstance(exc, CriError) and inner:
        return [obj for error in inner for obj in error_objects(error)]
    obj = _blank(_kind(exc), _message(exc))
    if isinstance(exc, StepFailed):
        failure = exc.failure
        obj.update(
            setup=failure.setup,
            step=failure.phase,
            index=failure.index,
            command=failure.command,
            exit_code=failure.exit_code,
            log=failure.log_path,
            tail=list(failure.tail),
        )
        if failure.location is not None:
            obj.update(file=failure.location.file, line=failure.location.line, column=failure.location.column)
    elif isinstance(exc, EngineError):
        obj.update(
            command=shlex.join(exc.command) if exc.command else None,
            tail=exc.output.splitlines()[-15:] if exc.output else [],
        )
    return [obj]


def problem_object(problem: Problem, *, kind: str | None = None) -> dict[str, Any]:
    """A zerops.yml (or settings) problem: where it is and what is wrong."""
    obj = _blank(kind or ("WARNING" if problem.severity == "warning" else ConfigError.status), problem.message)
    where = problem.location
    obj.update(
        file=where.file if where else None,
        line=where.line if where else None,
        column=where.column if where else None,
        path=problem.path or None,
        severity=problem.severity,
    )
    return obj


def _blank(kind: str, message: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "message": message,
        "severity": "error",
        "setup": None,
        "file": None,
        "line": None,
        "column": None,
        "path": None,
        "step": None,
        "index": None,
        "command": None,
        "exit_code": None,
        "log": None,
        "tail": [],
    }


def _kind(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    return str(getattr(exc, "status", "FAILED") or "FAILED")


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, StepFailed):  # the first line; the rest is in the other fields
        return str(exc).splitlines()[0]
    return str(exc)
