"""The run configuration a version was deployed with, as its record keeps it (pure: no Docker).

Zerops activates an older version with its own ``run`` configuration and environment variables,
not with today's zerops.yml. A version's record therefore keeps the parts of its setup that
activation reads: ``run`` (start, ports, checks, ``envVariables``...), ``deploy`` (readiness,
temporaryShutdown) and the build's ``envVariables`` (``${BUILD_name}`` references). These are
the values written in zerops.yml, never resolved ones: project env-file variables (secrets) are
read again at activation and so never reach the records.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from .errors import Location
from .model import Deploy, Run, Setup

FORMAT = 1


def record(setup: Setup) -> dict[str, Any]:
    """What a version's record keeps of ``setup`` (JSON-safe)."""
    return {
        "format": FORMAT,
        "run": _encode(setup.run),
        "deploy": _encode(setup.deploy),
        "build_env": dict(setup.build.env_variables) if setup.build is not None else None,
    }


def as_deployed(setup: Setup, saved: Mapping[str, Any] | None) -> Setup:
    """``setup`` as the version was deployed (``saved`` from :func:`record`); ``setup`` itself
    when the record keeps no configuration (an adopted version, a record from before)."""
    if not saved or saved.get("format") != FORMAT:
        return setup
    build = setup.build
    if build is not None and saved.get("build_env") is not None:
        build = dataclasses.replace(build, env_variables=dict(saved["build_env"]))
    return dataclasses.replace(
        setup, run=_decode(Run, saved["run"]), deploy=_decode(Deploy, saved["deploy"]), build=build
    )


def _encode(value: Any) -> Any:
    if isinstance(value, Location):
        return [value.file, value.line, value.column]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(kind: Any, data: Any) -> Any:
    """``data`` (from :func:`_encode`) back into ``kind``, led by the model's type hints."""
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if bool in options and isinstance(data, bool):
            return data
        for option in options:
            if option is not bool:
                return _decode(option, data)
    if kind is Location:
        return Location(str(data[0]), int(data[1]), int(data[2]))
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(
            **{f.name: _decode(hints[f.name], data[f.name]) for f in dataclasses.fields(kind) if f.name in data}
        )
    if origin is tuple:
        (item, *_rest) = typing.get_args(kind)
        return tuple(_decode(item, v) for v in data)
    if origin in (Mapping, dict, collections.abc.Mapping):
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is not Any:
            return {k: _decode(args[1], v) for k, v in data.items()}
        return dict(data)
    if kind is float:
        return float(data)
    return data
