"""What a Zerops runtime is made of: supported ``run.base`` values and OS images.

The one file to change for a new runtime (another language, another Gleam release) or a new OS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ConfigError, Location

#: run.base aliases Zerops accepts for Gleam, and the release each resolves to today.
GLEAM_VERSIONS: dict[str, str] = {
    "gleam@1": "1.5.1",
    "gleam@1.5": "1.5.1",
    "gleam@1.5.1": "1.5.1",
    "gleam@latest": "1.5.1",
}
DEFAULT_BASE = "gleam@1.5"

GLEAM_RELEASE_URL = (
    "https://github.com/gleam-lang/gleam/releases/download/"
    "v{version}/gleam-v{version}-{arch}-unknown-linux-musl.tar.gz"
)


@dataclass(frozen=True)
class OsInfo:
    """An OS a runtime can be built on, and what its default image ships."""

    name: str
    template: str
    default_image: str
    erlang: str  # what the distribution's packages give, for the docs and `render`


OPERATING_SYSTEMS: dict[str, OsInfo] = {
    "alpine": OsInfo("alpine", "alpine.Dockerfile.j2", "alpine:3.20", "Erlang/OTP 26.2 (apk erlang)"),
    "ubuntu": OsInfo("ubuntu", "ubuntu.Dockerfile.j2", "ubuntu:24.04", "Erlang/OTP 25.3 (apt erlang-nox)"),
}


def gleam_version(base: str | None, *, where: Location | None = None, path: str = "run.base") -> str:
    """The Gleam release for a run.base value; an unsupported one is a clear error."""
    key = (base or DEFAULT_BASE).strip().lower()
    try:
        return GLEAM_VERSIONS[key]
    except KeyError:
        supported = ", ".join(GLEAM_VERSIONS)
        message = f"unsupported base {base!r}: cri-tasks builds Gleam runtimes ({supported})"
        from .errors import Problem

        raise ConfigError([Problem(message, path=path, location=where)]) from None


def gleam_arch(machine: str | None = None) -> str:
    """The architecture part of Gleam's release file names."""
    machine = (machine or os.uname().machine).lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
        machine, machine
    )


def gleam_release_url(version: str, machine: str | None = None) -> str:
    return GLEAM_RELEASE_URL.format(version=version, arch=gleam_arch(machine))
