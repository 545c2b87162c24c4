"""Settings under the ``cri`` key of Invoke's configuration, with their defaults.

Every setting is declared here with a default, because Invoke only lets ``INVOKE_CRI_*``
environment variables override keys that already exist, and because Invoke merges collection
configuration shallowly across collection levels (pyinvoke/invoke#782): :func:`resolve` deep-merges
whatever configuration arrives over these defaults, so a user's partial ``cri`` dict never drops
the rest.
"""

from __future__ import annotations

import copy
from types import MappingProxyType
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from .errors import ConfigError

DEFAULTS: dict[str, Any] = {
    # zerops.yml to read (None: zerops.yaml, then zerops.yml, in the current directory)
    "file": None,
    # records, logs and build contexts; relative paths are relative to the project folder
    "cache_dir": ".cri",
    # image repository prefix: <repository>/<project id>/<setup>:<fingerprint[:12]> (and :v<N>)
    "repository": "cri",
    # base images for run.os / build.os (point them at a mirror in air-gapped CI)
    "images": {"alpine": "alpine:3.20", "ubuntu": "ubuntu:24.04"},
    # where the Gleam CLI comes from: "release", a path to a local .tar.gz of the binary, or "none"
    "gleam": {"source": "release"},
    # zCLI in the runtime image (off, as it needs a download)
    "zcli": {"enabled": False, "url": "https://github.com/zeropsio/zcli/releases/latest/download/zcli-linux-amd64"},
    # how many setups build at once
    "parallel": 4,
    # seconds a prepare waits for another process building the same image
    "lock_timeout": 3600,
    # buildx builder to use (None: the current one)
    "builder": None,
    # project variables (NAME=VALUE lines) available to ${name} references and to containers
    "env_file": None,
    # deploy target: "local" (this Docker engine) or "swarm"
    "target": "local",
    # containers per setup: {default: N, <setup>: N} (a mapping, so invoke.yaml can merge into it)
    "replicas": {"default": 1},
    # host ports: {setup: {container_port: host_port}}; unlisted ports get a free one, kept
    "publish": {},
    # the host address published ports bind to
    "publish_address": "127.0.0.1",
    # app versions kept per setup (Zerops keeps 10)
    "keep_versions": 10,
    # seconds a stopping container gets before SIGKILL
    "stop_timeout": 10,
    # registry the swarm target pushes app images to (host[:port]), credentials from Docker's config
    "registry": None,
    # swarm target: how ports are published ("auto": the routing mesh where it works, else the
    # front proxy on a host-mode port), rolling update and its failure monitor
    "swarm": {"ports": "auto", "parallelism": 1, "monitor": "15s", "stack": None, "wait": True,
              "timeout": None, "constraints": {}, "proxy_constraints": []},
}


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Settings(NamedTuple):
    """The resolved ``cri`` settings (see :data:`DEFAULTS`); made by :func:`resolve`."""

    file: str | None
    cache_dir: str
    repository: str
    images: Mapping[str, str]
    gleam_source: str
    zcli_enabled: bool
    zcli_url: str
    parallel: int
    lock_timeout: float
    builder: str | None
    env_file: str | None = None
    target: str = "local"
    replicas: Any = MappingProxyType({"default": 1})
    publish: Mapping[str, Any] = MappingProxyType({})
    publish_address: str = "127.0.0.1"
    keep_versions: int = 10
    stop_timeout: int = 10
    registry: str | None = None
    swarm: Mapping[str, Any] = MappingProxyType({})

    def replicas_for(self, setup: str) -> int:
        if isinstance(self.replicas, Mapping):
            value = self.replicas.get(setup, self.replicas.get("default", 1))
        else:
            value = self.replicas
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"cri.replicas for {setup}: expected a number, got {value!r}") from None
        if n < 1:
            raise ConfigError(f"cri.replicas for {setup}: expected at least 1, got {n}")
        return n

    def host_port(self, setup: str, port: int) -> int | None:
        ports = self.publish.get(setup) or {}
        value = ports.get(port, ports.get(str(port))) if isinstance(ports, Mapping) else None
        return int(value) if value not in (None, "") else None

    def env_file_path(self, root: Path) -> Path | None:
        if not self.env_file:
            return None
        path = Path(self.env_file).expanduser()
        return path if path.is_absolute() else root / path

    def cache_path(self, project_root: Path) -> Path:
        path = Path(self.cache_dir).expanduser()
        return path if path.is_absolute() else project_root / path

    def gleam_archive(self, project_root: Path) -> Path | None:
        """The local Gleam archive ``gleam.source`` names (``~`` expanded, relative to the
        project), or None for ``release`` and ``none``."""
        source = self.gleam_source.strip()
        if source in ("release", "none"):
            return None
        path = Path(source).expanduser()
        return path if path.is_absolute() else project_root / path

    def image_for(self, os_name: str) -> str:
        try:
            return self.images[os_name]
        except KeyError:
            raise ConfigError(f"cri.images has no image for os {os_name!r}") from None


def resolve(config: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    """Settings from a raw ``cri`` mapping (or None) plus keyword overrides (None = keep)."""
    raw = merge(DEFAULTS, dict(config or {}))
    raw = merge(raw, {k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(
            file=None if raw["file"] in (None, "") else str(raw["file"]),
            cache_dir=str(raw["cache_dir"]),
            repository=str(raw["repository"]).rstrip("/"),
            images={str(k): str(v) for k, v in dict(raw["images"]).items()},
            gleam_source=str(dict(raw["gleam"]).get("source", "release")),
            zcli_enabled=_bool(dict(raw["zcli"]).get("enabled", False)),
            zcli_url=str(dict(raw["zcli"]).get("url", DEFAULTS["zcli"]["url"])),
            parallel=max(1, int(raw["parallel"])),
            lock_timeout=float(raw["lock_timeout"]),
            builder=None if raw["builder"] in (None, "") else str(raw["builder"]),
            env_file=None if raw["env_file"] in (None, "") else str(raw["env_file"]),
            target=str(raw["target"]),
            replicas=raw["replicas"],
            publish=dict(raw["publish"] or {}),
            publish_address=str(raw["publish_address"]),
            keep_versions=max(1, int(raw["keep_versions"])),
            stop_timeout=max(0, int(raw["stop_timeout"])),
            registry=None if raw["registry"] in (None, "") else str(raw["registry"]).rstrip("/"),
            swarm=dict(raw["swarm"] or {}),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid cri settings: {exc}") from None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
