"""Run-time environment variables: the setup's envVariables, a project env file, built-ins, and
``${name}`` references between them (pure: no Docker).

Values only ever reach containers at run time (an env file handed to ``docker run`` and deleted
right after); they are never written into an image, a Dockerfile, a label, a log or the cache.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError, Location, Problem

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a dotenv file, read by dotenv's rules (python-dotenv's parser: the format
    users write for docker compose and dotenv): ``#`` comments, also after an unquoted value;
    ``export``; single quotes literal, double quotes with ``\\n``-style escapes; quoted values
    may span lines. ``${name}`` references are left as written, for :func:`resolve`.

    A line dotenv cannot parse (an unterminated quote...), a name that is not a variable name or
    a name without ``=`` is a ConfigError naming the file and the line."""
    import io

    from dotenv.parser import parse_stream  # only where an env file is set

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cri.env_file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cri.env_file: {path} is not UTF-8 text") from None
    out: dict[str, str] = {}
    problems = []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string  # may start with the blank lines before the statement
        skipped = original[: len(original) - len(original.lstrip())].count("\n")
        where = Location(str(path), binding.original.line + skipped, 1)
        if binding.error:
            first = original.strip().splitlines()[0] if original.strip() else ""
            problems.append(
                Problem(f"cannot parse {_clip(first)} (expected NAME=VALUE; is a quote left open?)", location=where)
            )
        elif binding.key is None:
            continue  # a comment or a blank line
        elif not _NAME.match(binding.key):
            problems.append(Problem(f"{_clip(binding.key)} is not a variable name", location=where))
        elif binding.value is None:
            # docker compose would take a bare NAME from the host's environment; a project's
            # variables must not depend on whoever runs the deploy
            problems.append(
                Problem(f"{binding.key} has no value (write {binding.key}= for an empty one)", location=where)
            )
        else:
            out[binding.key] = binding.value
    if problems:
        raise ConfigError(problems)
    return out


def _clip(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def resolve(
    own: Mapping[str, str],
    *,
    project: Mapping[str, str],
    builtins: Mapping[str, str],
    where: str = "run.envVariables",
    location: Location | None = None,
    locations: Mapping[str, Location] | None = None,
    other: Mapping[str, str] | None = None,
    other_prefix: str = "",
    warnings: list[Problem] | None = None,
) -> dict[str, str]:
    """The container's environment: built-ins, then project variables, then the setup's own,
    with every ``${name}`` resolved (recursively).

    ``other`` are the other phase's variables, reachable as ``${<other_prefix>name}`` (Zerops'
    ``${RUNTIME_name}`` in the build, ``${BUILD_name}`` at run time); a variable of this phase
    with that very name wins. A reference to nothing stays as written, as on Zerops (most
    recipes name other services' variables such as ``${db_hostname}``), and is appended to
    ``warnings``. A cycle is an error naming the variable, before anything starts."""
    scope: dict[str, str] = {**builtins, **project, **own}
    cross: dict[str, str] = {}
    if other:
        # The other phase's values as that phase sees them (its own references resolved, its
        # unknown references kept), never the other way round: no cycle across phases.
        try:
            seen = resolve(other, project=project, builtins=builtins)
        except ConfigError:
            seen = {}  # a cycle there is that phase's error, reported where it is resolved
        cross = {f"{other_prefix}{k}": v for k, v in seen.items() if k in other and f"{other_prefix}{k}" not in scope}
    done: dict[str, str] = {}
    problems: list[Problem] = []
    unknown: list[Problem] = []

    def expand(name: str, chain: tuple[str, ...]) -> str:
        if name in done:
            return done[name]
        if name in chain:
            cycle = " -> ".join((*chain, name))
            raise _Cycle(chain[0], f"reference cycle {cycle}")
        value = scope[name]

        def sub(m: re.Match[str]) -> str:
            ref = m.group(1)
            if ref in scope:
                return expand(ref, (*chain, name))
            if ref in cross:
                return cross[ref]
            unknown.append(
                Problem(
                    f"${{{ref}}} names no variable: it stays as written (as on Zerops; project variables "
                    f"go in cri.env_file)",
                    path=f"{where}.{name}",
                    location=(locations or {}).get(name, location),
                    severity="warning",
                )
            )
            return m.group(0)

        done[name] = _REF.sub(sub, value)
        return done[name]

    for name in scope:
        try:
            expand(name, ())
        except _Cycle as exc:
            problems.append(
                Problem(str(exc), path=f"{where}.{exc.name}", location=(locations or {}).get(exc.name, location))
            )
    if problems:
        raise ConfigError(_unique(problems))
    if warnings is not None:
        warnings.extend(p for p in _unique(unknown) if str(p) not in {str(w) for w in warnings})
    return done


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


class _Cycle(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
