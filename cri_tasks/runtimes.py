"""What a Zerops runtime is made of: the ``base`` values Zerops accepts, the Gleam releases
cri-tasks builds, and the OS images.

The one file to change when Zerops lists new versions (:data:`BASE_VERSIONS`), for a new Gleam
release or a new OS.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ConfigError, Location

#: Every ``base`` value Zerops accepts, per section: name -> the versions after ``@``. Source:
#: Zerops' published list (zeropsio/docs ``apps/docs/static/data.json``, captured 2026-07), plus
#: the values of its earlier schema (2026-04) that real files still use. ``validate`` refuses
#: anything else, as Zerops does. Since 2026-05 a value may be OS-qualified, ``ubuntu/gleam@1.5``
#: (:func:`split_base`). Add a version here when Zerops adds one.
_SHARED_BASES = {
    "alpine": "3.17 3.18 3.19 3.20 3.21 3.22 3.23 latest",
    "bun": "1.1 1.1.34 1.2 1.2.2 1.3 1.3.9 canary latest nightly",
    "deno": "1 1.45.5 2 2.0.0 latest",
    "dotnet": "6 7 8 9 10 latest",
    "elixir": "1 1.16 1.16.2 latest",
    "gleam": "1 1.5 1.5.1 latest",
    "go": "1 1.22 latest",
    "golang": "1 latest",
    "java": "17 21 latest",
    "nodejs": "18 20 22 24 latest",
    "python": "3.11 3.12 3.14 latest",
    "ruby": "3.2 3.3 3.4 latest",
    "rust": "1 1.78 1.80 1.86 latest nightly stable",
    "ubuntu": "22.04 24.04 latest",
}
BASE_VERSIONS: dict[str, dict[str, str]] = {
    "build": {**_SHARED_BASES, "nginx": "1.22 latest", "php": "8.1 8.3 8.4 8.5 latest"},
    "run": {
        **_SHARED_BASES,
        "docker": "26 26.1 26.1.5 latest",
        "nginx": "1.22 latest",
        "php-apache": "8.1 8.3 8.4 8.5 latest",
        "php-nginx": "8.1 8.3 8.4 8.5 latest",
        "runtime": "latest",
        "static": "1.0 latest",
        "zcp": "1 latest",
    },
}
#: accepted without a name: ``static``, and the OS versions the earlier schema (2026-04) lists bare
_BARE_OS_VERSIONS = tuple("22.04 24.04 3.17 3.18 3.19 3.20 3.21 3.22 3.23".split())
BARE_BASES: dict[str, tuple[str, ...]] = {"build": _BARE_OS_VERSIONS, "run": ("static", *_BARE_OS_VERSIONS)}


def base_values(section: str) -> tuple[str, ...]:
    """Every unqualified base accepted in ``section`` ("build" or "run")."""
    table = BASE_VERSIONS[section]
    return BARE_BASES[section] + tuple(f"{name}@{v}" for name, versions in table.items() for v in versions.split())


def split_base(value: str) -> tuple[str | None, str]:
    """(OS or None, base) of a base value: ``ubuntu/gleam@1.5`` -> ("ubuntu", "gleam@1.5")."""
    text = value.strip()
    if "/" in text:
        os_name, _, rest = text.partition("/")
        return os_name.lower(), rest
    return None, text


#: run.base aliases Zerops accepts for Gleam, and the release each resolves to today.
GLEAM_VERSIONS: dict[str, str] = {
    "gleam@1": "1.5.1",
    "gleam@1.5": "1.5.1",
    "gleam@1.5.1": "1.5.1",
    "gleam@latest": "1.5.1",
}
DEFAULT_BASE = "gleam@1.5"

#: The oldest Erlang/OTP release each Gleam release gets here: the one Zerops ships with it
#: (``gleam@1.5`` comes with Erlang/OTP 26, as the official Gleam recipe states). Ubuntu 24.04
#: and Debian 12 ship OTP 25: the OS templates then take Erlang from a newer source
#: (``templates/_base_ubuntu.j2``) and every runtime image checks what it got.
GLEAM_MIN_OTP: dict[str, int] = {"1.5.1": 26}

#: Where a Debian-family image whose own Erlang is too old takes a newer one: the next release of
#: the same distribution that has it, read through the image's own apt sources (same address,
#: this suite, pinned low: templates/erlang.sh). ``ID:VERSION_CODENAME`` of /etc/os-release ->
#: suite. Debian 13 has OTP 27; Ubuntu 26.04 has OTP 27 or newer. Add a line for a new release.
NEWER_ERLANG_SUITES: dict[str, str] = {
    "debian:bookworm": "trixie",
    "ubuntu:noble": "resolute",
}

GLEAM_RELEASE_URL = (
    "https://github.com/gleam-lang/gleam/releases/download/v{version}/gleam-v{version}-{arch}-unknown-linux-musl.tar.gz"
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
    "ubuntu": OsInfo(
        "ubuntu",
        "ubuntu.Dockerfile.j2",
        "ubuntu:24.04",
        "Erlang/OTP 26+ (erlang-nox; the distribution's own when new enough, else a newer source)",
    ),
}


def gleam_version(base: str | None, *, where: Location | None = None, path: str = "run.base") -> str:
    """The Gleam release for a run.base value; an unsupported one is a clear error."""
    key = split_base(base or DEFAULT_BASE)[1].lower()
    try:
        return GLEAM_VERSIONS[key]
    except KeyError:
        supported = ", ".join(GLEAM_VERSIONS)
        message = f"unsupported base {base!r}: cri-tasks builds Gleam runtimes ({supported})"
        from .errors import Problem

        raise ConfigError([Problem(message, path=path, location=where)]) from None


def min_otp(gleam: str) -> int:
    """The oldest Erlang/OTP major release that fits Gleam release ``gleam``."""
    return GLEAM_MIN_OTP.get(gleam, max(GLEAM_MIN_OTP.values()))


def gleam_arch(machine: str | None = None) -> str:
    """The architecture part of Gleam's release file names."""
    machine = (machine or os.uname().machine).lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine, machine)


def gleam_release_url(version: str, machine: str | None = None) -> str:
    return GLEAM_RELEASE_URL.format(version=version, arch=gleam_arch(machine))


def build_toolchain(bases: Sequence[str], *, where: Location | None = None, path: str = "build.base") -> str:
    """The Gleam release for ``build.base``; every base cri-tasks cannot put into the build
    container is an error, listed at once (Zerops installs each base of the list; a base dropped
    silently would fail later, inside a build command)."""
    from .errors import Problem

    gleam = [b for b in bases if split_base(b)[1].lower().startswith("gleam@")]
    if not gleam:  # no Gleam at all: the message that lists the Gleam bases cri-tasks builds
        return gleam_version(bases[0] if bases else None, where=where, path=path)
    problems = []
    for i, base in enumerate(bases):
        if base in gleam[:1]:
            continue
        name = split_base(base)[1]
        if name.lower().startswith("gleam@"):
            why = (
                f"a second Gleam base {base!r}: the build container holds one Gleam release ({gleam[0]!r} comes first)"
            )
        else:
            why = (
                f"cri-tasks cannot provide {base!r} in the build container: it builds the Gleam toolchain "
                "(Gleam, Erlang/OTP, rebar3) only; install another toolchain in build.prepareCommands "
                "from a source that can reach this machine, or build this setup on Zerops"
            )
        problems.append(Problem(why, path=f"{path}[{i}]" if len(bases) > 1 else path, location=where))
    if problems:
        raise ConfigError(problems)
    return gleam_version(gleam[0] if gleam else None, where=where, path=path)
