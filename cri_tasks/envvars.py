"""Run-time environment variables: the setup's envVariables, a project env file, built-ins, and
``${name}`` references between them (pure: no Docker).

Values only ever reach containers at run time (an env file handed to ``docker run`` and deleted
right after); they are never written into an image, a Dockerfile, a label, a log or the cache.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from .errors import ConfigError, Location, Problem

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines, optional ``export``, optional quotes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cri.env_file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cri.env_file: {path} is not UTF-8 text") from None
    out: dict[str, str] = {}
    problems = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key):
            problems.append(Problem("expected NAME=VALUE", location=Location(str(path), n, 1)))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    if problems:
        raise ConfigError(problems)
    return out


def resolve(
    own: Mapping[str, str],
    *,
    project: Mapping[str, str],
    builtins: Mapping[str, str],
    where: str = "run.envVariables",
    location: Location | None = None,
    locations: Mapping[str, Location] | None = None,
) -> dict[str, str]:
    """The container's environment: built-ins, then project variables, then the setup's own,
    with every ``${name}`` resolved (recursively). An unknown reference or a cycle is an error
    naming the variable, before anything starts."""
    scope: dict[str, str] = {**builtins, **project, **own}
    done: dict[str, str] = {}
    problems: list[Problem] = []

    def expand(name: str, chain: tuple[str, ...]) -> str:
        if name in done:
            return done[name]
        if name in chain:
            cycle = " -> ".join((*chain, name))
            raise _Cycle(f"{where}.{chain[0]}: reference cycle {cycle}")
        value = scope[name]

        def sub(m: re.Match[str]) -> str:
            ref = m.group(1)
            if ref not in scope:
                raise _Unknown(name, ref)
            return expand(ref, (*chain, name))

        done[name] = _REF.sub(sub, value)
        return done[name]

    for name in scope:
        try:
            expand(name, ())
        except _Unknown as exc:
            known = ", ".join(sorted(scope)) or "none"
            problems.append(
                Problem(
                    f"unknown reference ${{{exc.ref}}} (known: {known}; project variables go in cri.env_file)",
                    path=f"{where}.{exc.name}",
                    location=(locations or {}).get(exc.name, location),
                )
            )
        except _Cycle as exc:
            problems.append(Problem(str(exc), location=location))
    if problems:
        raise ConfigError(_unique(problems))
    return done


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


class _Unknown(Exception):
    def __init__(self, name: str, ref: str) -> None:
        self.name, self.ref = name, ref


class _Cycle(Exception):
    pass
