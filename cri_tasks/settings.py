"""Settings under the ``cri`` key of Invoke's configuration, with their defaults.

Every setting is declared here with a default, because Invoke only lets ``INVOKE_CRI_*``
environment variables override keys that already exist, and because Invoke merges collection
configuration shallowly across collection levels (pyinvoke/invoke#782): :func:`resolve` deep-merges
whatever configuration arrives over these defaults, so a user's partial ``cri`` dict never drops
the rest.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from .durations import parse_duration
from .errors import ConfigError, Problem, suggest

DEFAULTS: dict[str, Any] = {
    # zerops.yml to read (None: zerops.yaml, then zerops.yml, in the current directory or the
    # nearest folder above it, up to the project's root: paths.locate)
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
    "swarm": {
        "ports": "auto",
        "parallelism": 1,
        "monitor": "15s",
        "stack": None,
        "wait": True,
        "timeout": None,
        "constraints": {},
        "proxy_constraints": [],
    },
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


#: the swarm target pushes every app image to ``cri.registry``: a deploy to it without one is
#: refused before the build (cri_tasks.preflight)
SWARM_NEEDS_REGISTRY = (
    "cri.registry: the swarm target pushes app images to a registry every node can pull "
    "from; set it (host[:port], e.g. registry.example.com or 127.0.0.1:5000)"
)
#: how the swarm target publishes ports (``cri.swarm.ports``; cri_tasks/targets/swarm.py)
SWARM_PORTS = ("auto", "mesh", "proxy")


class SwarmSettings(NamedTuple):
    """``cri.swarm``, checked by :func:`resolve` like every other setting; the swarm target
    (:mod:`cri_tasks.targets.swarm`) only reads it."""

    ports: str = "auto"  # one of SWARM_PORTS
    parallelism: int = 1  # tasks updated at once; 0: all at once
    monitor: float = 15.0  # seconds Swarm watches a new task before the next one
    stack: str | None = None  # None: cri-<project id>
    wait: bool = True  # wait for the rolling update to converge
    timeout: float | None = None  # seconds to wait for it; None: from the replicas and the monitor
    constraints: Any = MappingProxyType({})  # a list of placement constraints, or {default|<setup>: list}
    proxy_constraints: tuple[str, ...] = ()  # placement of the front proxy (swarm.ports proxy)


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
    swarm: SwarmSettings = SwarmSettings()

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
        """The host port ``cri.publish`` gives the setup's ``port``, or None (a free one)."""
        ports = self.publish.get(setup) or {}
        value = ports.get(port, ports.get(str(port))) if isinstance(ports, Mapping) else None
        if value in (None, ""):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            message = f"cri.publish for {setup}, port {port}: expected a host port number, got {_shown(value)}"
            raise ConfigError(message) from None

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

    def checked_gleam_archive(self, project_root: Path) -> Path | None:
        """:meth:`gleam_archive`, refused when it names no file (the pre-flight asks before any
        task works; a prepare or a build would find out only when it needs the archive)."""
        path = self.gleam_archive(project_root)
        if path is not None and not path.is_file():
            source = self.gleam_source.strip()
            message = f"cri.gleam.source: {source!r} is neither 'release', 'none' nor an existing file ({path})"
            raise ConfigError(message)
        return path

    def image_for(self, os_name: str) -> str:
        try:
            return self.images[os_name]
        except KeyError:
            raise ConfigError(f"cri.images has no image for os {os_name!r}") from None


#: settings holding a fixed set of keys (an unknown key there is a typo); the other mappings
#: (images, replicas, publish, swarm.constraints) are keyed by the user's own names
CLOSED = {"": DEFAULTS, "gleam": DEFAULTS["gleam"], "zcli": DEFAULTS["zcli"], "swarm": DEFAULTS["swarm"]}

#: the deploy targets cri.target may name (cri_tasks.targets.get holds their code)
TARGETS = ("local", "swarm")


def declared(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as a collection declares it to Invoke, so every ``INVOKE_CRI_*`` variable arrives
    as the string the user wrote and :func:`resolve` checks it like any other value.

    Invoke casts a variable to the type of the declared value: ``int("abc")`` raised a traceback
    before any task ran, ``bool("false")`` was True, and a list default refused every variable.
    Numbers and booleans are declared as strings and empty lists as None (= the default)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out[key] = declared(value)
        elif isinstance(value, (bool, int, float)):
            out[key] = str(value)
        elif isinstance(value, (list, tuple)) and not value:
            out[key] = None
        else:
            out[key] = value
    return out


def check_keys(config: Mapping[str, Any], where: str = "") -> None:
    """Unknown keys (``repositry``, ``imagse``) are an error with a "did you mean"."""
    known = CLOSED.get(where)
    if known is None:
        return
    problems = []
    for key in config:
        if key not in known:
            name = f"cri.{where}.{key}" if where else f"cri.{key}"
            problems.append(f"{name}: unknown setting{suggest(str(key), known)}")
        elif isinstance(config[key], Mapping) and not where:
            try:
                check_keys(config[key], str(key))
            except ConfigError as exc:
                problems.extend(p.message for p in exc.problems)
    if problems:
        raise ConfigError([Problem(p) for p in problems])


def resolve(config: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    """Settings from a raw ``cri`` mapping (or None) plus keyword overrides (None = keep).

    Every value is checked here, at the door: a ConfigError names the setting (``cri.parallel``),
    what it expects and what it got. A None value means the default."""
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"cri: expected a mapping of settings, got {_shown(config)}")
    given = _without_none(dict(config or {}))
    check_keys(given)
    raw = merge(DEFAULTS, given)
    raw = merge(raw, {k: v for k, v in overrides.items() if v is not None})
    gleam, zcli, swarm = (_mapping(raw, key) for key in ("gleam", "zcli", "swarm"))
    target = _text(raw, "target")
    if target not in TARGETS:
        raise ConfigError(
            f"cri.target: unknown deploy target {target!r}{suggest(target, TARGETS)} (known: {', '.join(TARGETS)})"
        )
    return Settings(
        file=_optional_text(raw, "file"),
        cache_dir=_text(raw, "cache_dir"),
        repository=_text(raw, "repository").rstrip("/"),
        images=_images(raw["images"]),
        gleam_source=_text(gleam, "source", "gleam.source", default="release"),
        zcli_enabled=_flag(zcli.get("enabled", False), "zcli.enabled"),
        zcli_url=_text(zcli, "url", "zcli.url", default=DEFAULTS["zcli"]["url"]),
        parallel=_number(raw["parallel"], "parallel", int, minimum=1),
        lock_timeout=_number(raw["lock_timeout"], "lock_timeout", float, minimum=0),
        builder=_optional_text(raw, "builder"),
        env_file=_optional_text(raw, "env_file"),
        target=target,
        replicas=_replicas(raw["replicas"]),
        publish=_mapping(raw, "publish"),
        publish_address=_text(raw, "publish_address"),
        keep_versions=_number(raw["keep_versions"], "keep_versions", int, minimum=1),
        stop_timeout=_number(raw["stop_timeout"], "stop_timeout", int, minimum=0),
        registry=None if (r := _optional_text(raw, "registry")) is None else r.rstrip("/"),
        swarm=_swarm(swarm),
    )


def _without_none(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _without_none(v) if isinstance(v, Mapping) else v for k, v in config.items() if v is not None}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"cri.{name}: expected {expected}, got {_shown(value)}")


def _mapping(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(key, "a mapping", value)
    return dict(value)


def _text(raw: Mapping[str, Any], key: str, name: str | None = None, *, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None and default is not None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value).strip() == "":
        raise _bad(name or key, "a non-empty string", value)
    return str(value)


def _optional_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value in (None, ""):
        return None
    return _text(raw, key)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        return _bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _bad(name, "true or false", value)


N = TypeVar("N", int, float)


def _number(value: Any, name: str, kind: type[N], *, minimum: float) -> N:
    expected = ("a whole number" if kind is int else "a number") + f" of at least {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _bad(name, expected, value)
    try:
        number = float(str(value).strip())
    except ValueError:
        raise _bad(name, expected, value) from None
    if (
        number != number
        or number in (float("inf"), float("-inf"))
        or number < minimum
        or (kind is int and not number.is_integer())
    ):
        raise _bad(name, expected, value)
    return kind(number)


def _duration(value: Any, name: str) -> float:
    """Seconds, by the one duration grammar zerops.yml uses too (:mod:`cri_tasks.durations`)."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"cri.{name}: {exc}") from None


#: a Swarm stack name, as ``docker stack deploy`` takes it
_STACK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def _swarm(raw: Mapping[str, Any]) -> SwarmSettings:
    """``cri.swarm`` checked: every value the swarm target reads, refused here, before any task
    runs, with the setting's name."""
    stack = str(raw["stack"]) if raw.get("stack") else None  # "" or null: cri-<project id>
    if stack is not None and not _STACK_NAME.fullmatch(stack):
        raise ConfigError(f"cri.swarm.stack: {stack!r} is not a valid stack name")
    ports = str(raw.get("ports") or "auto").lower()
    if ports not in SWARM_PORTS:
        raise ConfigError(f"cri.swarm.ports: expected one of {', '.join(SWARM_PORTS)}, got {ports!r}")
    given = raw.get("parallelism", 1)
    try:
        parallelism = int(given)
    except (TypeError, ValueError):
        raise ConfigError(f"cri.swarm.parallelism: expected a number, got {given!r}") from None
    if parallelism < 0:
        raise ConfigError("cri.swarm.parallelism: expected 0 (all at once) or more")
    timeout = raw.get("timeout")
    return SwarmSettings(
        ports=ports,
        parallelism=parallelism,
        monitor=_duration(raw.get("monitor", DEFAULTS["swarm"]["monitor"]), "swarm.monitor"),
        stack=stack,
        wait=_flag(raw.get("wait", True), "swarm.wait"),
        timeout=None if timeout in (None, "") else _duration(timeout, "swarm.timeout"),
        constraints=_constraints(raw.get("constraints")),
        proxy_constraints=tuple(_constraint_list(raw.get("proxy_constraints"), "swarm.proxy_constraints")),
    )


def _constraints(value: Any) -> Any:
    """``cri.swarm.constraints``: one list for every setup, or ``{default: [...], <setup>: [...]}``."""
    if isinstance(value, Mapping):
        return {str(setup): _constraint_list(items, f"swarm.constraints.{setup}") for setup, items in value.items()}
    return _constraint_list(value, "swarm.constraints")


def _constraint_list(value: Any, name: str) -> list[str]:
    # A lone string would be read one character at a time as constraints: refused.
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise _bad(name, "a list of placement constraints (node.labels.app == true)", value)
    return [str(item) for item in value]


def _images(value: Any) -> dict[str, str]:
    expected = "a mapping of run.os / build.os to an image (ubuntu: ubuntu:24.04)"
    if not isinstance(value, Mapping):
        raise _bad("images", expected, value)
    out = {}
    for key, image in value.items():
        if isinstance(image, bool) or not isinstance(image, (str, int, float)) or not str(image).strip():
            raise _bad(f"images.{key}", "an image reference", image)
        out[str(key)] = str(image)
    return out


def _replicas(value: Any) -> Any:
    """A number, or {default: N, <setup>: N}; each count is checked where a setup asks
    (:meth:`Settings.replicas_for`), so the error can name the setup."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad("replicas", "a number or a mapping of setup to a number", value)
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
