"""The one module that talks to Docker.

Cheap questions (does this image exist, what is its id) ask the engine's API on its local socket
(about 1 ms), or run the ``docker`` CLI (about 15 ms) when the engine is reached another way (a
context, TCP, SSH), so a cache hit never imports python-on-whales (about 230 ms). Builds, pulls, runs and removals go
through python-on-whales, imported on first use. python-on-whales picks exception subclasses by
matching stderr text (a failed ``RUN`` can come back as ``NoSuchNetwork``), so every call here
catches ``DockerException`` and classifies the failure itself.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import quote

from .errors import EngineError

_UNREACHABLE_HINTS = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "error during connect",
    "connection refused",
    "no such file or directory",
)


_PYTHON_ON_WHALES: tuple[Any, Any] | None = None


def _python_on_whales() -> tuple[Any, Any]:
    """python-on-whales' ``DockerException`` and ``docker``, imported on first use.

    The import builds some thousands of pydantic objects that live as long as the process; they
    are then frozen out of the garbage collector (``gc.freeze``), which spares every later
    collection and the interpreter's exit from walking them (about 60 ms of a cold prepare)."""
    global _PYTHON_ON_WHALES
    if _PYTHON_ON_WHALES is None:
        import gc

        _docker_binary()  # python-on-whales' ClientNotFoundError would be a traceback

        from python_on_whales import DockerException, docker

        gc.freeze()
        _PYTHON_ON_WHALES = (DockerException, docker)
    return _PYTHON_ON_WHALES


def _docker_binary() -> str:
    found = shutil.which("docker")
    if found is None:
        raise EngineError("the docker CLI was not found on PATH; install Docker (client and engine)")
    return found


def _looks_unreachable(text: str) -> bool:
    low = text.lower()
    return any(h in low for h in _UNREACHABLE_HINTS) and "no such image" not in low


def image_ids(refs: Sequence[str]) -> dict[str, str | None]:
    """The image id of each reference, None where the engine has no such image.

    One ``docker image inspect`` for all of them when they all exist (the cache-hit path);
    one per reference otherwise, to tell which is missing.
    """
    if not refs:
        return {}
    answered = _api_image_ids(refs)
    if answered is not None:
        return answered
    out = _inspect(list(refs))
    if out is not None and len(out) == len(refs):
        return dict(zip(refs, out, strict=True))
    result: dict[str, str | None] = {}
    for ref in refs:
        one = _inspect([ref])
        result[ref] = one[0] if one else None
    return result


#: prefix of every label cri-tasks puts on images, containers, volumes, networks and services
LABEL = "io.cri-tasks"

API_TIMEOUT = 10.0  # seconds for the API's answers to one image_ids call, before the CLI is asked


def _local_socket() -> str | None:
    """The engine's unix socket when the docker CLI would use it, else None (ask the CLI)."""
    host = os.environ.get("DOCKER_HOST", "")
    context = os.environ.get("DOCKER_CONTEXT", "")
    if host and context:
        return None  # let the CLI apply its own precedence
    if host:
        return host[len("unix://") :] if host.startswith("unix://") else None
    if context:
        return "/var/run/docker.sock" if context == "default" else None  # it overrides config.json
    config = os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")
    try:
        with open(config, "rb") as f:
            current = json.loads(f.read()).get("currentContext")
    except (OSError, ValueError, AttributeError):
        current = None
    if current not in (None, "", "default"):
        return None
    return "/var/run/docker.sock"


def _api_image_ids(refs: Sequence[str]) -> dict[str, str | None] | None:
    """``GET /images/<ref>/json`` for each reference on the local socket; None when the socket
    cannot be used (the caller then asks the CLI, which also words any connection error)."""
    path = _local_socket()
    if path is None:
        return None
    out: dict[str, str | None] = {}
    deadline = time.monotonic() + API_TIMEOUT  # for all of them: a hung engine then gets the CLI's turn
    try:
        for ref in refs:
            status, body = _api_get(path, f"/images/{quote(ref, safe='/:@')}/json", deadline - time.monotonic())
            if status == 404:
                out[ref] = None
            elif status == 200:
                out[ref] = str(json.loads(body)["Id"])
            else:
                return None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return out


def _api_get(socket_path: str, target: str, timeout: float) -> tuple[int, bytes]:
    """One HTTP/1.0 GET on a unix socket: the engine answers and closes, with no chunking, so
    this needs neither http.client (about 2 ms to import on a cache hit) nor keep-alive."""
    if timeout <= 0:
        raise TimeoutError(target)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("ascii"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _inspect(refs: list[str]) -> list[str] | None:
    cmd = [_docker_binary(), "image", "inspect", "--format", "{{.Id}}", *refs]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise EngineError("the Docker engine did not answer within 60 s", command=cmd) from None
    if proc.returncode == 0:
        return proc.stdout.split()
    if _looks_unreachable(proc.stderr):
        message = f"the Docker engine is not reachable: {proc.stderr.strip()}"
        raise EngineError(message, command=cmd, output=proc.stderr)
    return None


class BuildError(Exception):
    """A buildx build that failed; ``log`` holds everything it printed (classified by callers)."""

    def __init__(self, log: list[str], command: Sequence[str], return_code: int | None) -> None:
        super().__init__("docker buildx build failed")
        self.log = log
        self.command = list(command)
        self.return_code = return_code


def build(
    context: Path,
    *,
    dockerfile: Path,
    tags: Sequence[str],
    labels: Mapping[str, str],
    on_line: Callable[[str], None],
    builder: str | None = None,
    target: str | None = None,
    no_cache: bool = False,
) -> str:
    """Build with ``docker buildx build --progress=plain``; returns the image id.

    Every log line goes to ``on_line`` as it arrives. On failure raises :class:`BuildError`
    with the whole log, or :class:`EngineError` when the engine itself is unreachable.
    """
    kwargs: dict[str, Any] = dict(tags=list(tags), labels=dict(labels), load=True)
    if target:
        kwargs["target"] = target
    if no_cache:
        kwargs["cache"] = False
    _stream_build(context, dockerfile, kwargs, on_line, builder)
    ids = image_ids([tags[0]])
    image_id = ids.get(tags[0])
    if image_id is None:
        raise EngineError(f"buildx reported success but the engine has no image {tags[0]}")
    return image_id


def build_export(
    context: Path,
    *,
    dockerfile: Path,
    dest: Path,
    target: str,
    on_line: Callable[[str], None],
    secrets: Sequence[str] = (),
    builder: str | None = None,
) -> None:
    """Build ``target`` and export its filesystem into ``dest`` (``--output type=local``)."""
    kwargs: dict[str, Any] = dict(target=target, output={"type": "local", "dest": str(dest)}, secrets=list(secrets))
    _stream_build(context, dockerfile, kwargs, on_line, builder)


def _stream_build(
    context: Path, dockerfile: Path, kwargs: dict[str, Any], on_line: Callable[[str], None], builder: str | None
) -> None:
    """Run one ``docker buildx build --progress=plain``, every line to ``on_line`` in the order
    buildx wrote it (stdout and stderr share one pipe).

    The build runs in its own process group (a new session), registered until it ends: stopping
    it (Ctrl-C, a log it cannot write, :func:`stop_children` from another thread) signals the
    whole group, docker's CLI and its buildx plugin alike, without looking for them in ``/proc``.
    python-on-whales cannot start a process that way (nor merge the two streams in order), so the
    build's command line is spelled here, from the same few options."""
    cmd = _buildx_command(context, dockerfile, kwargs, builder)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    except OSError as exc:
        raise EngineError(f"cannot run {cmd[0]}: {exc.strerror}", command=cmd) from None
    with _BUILDS_LOCK:
        _BUILDS.add(proc)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            on_line(line)
        code = proc.wait()
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        with _BUILDS_LOCK:
            _BUILDS.discard(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    if code == 0:
        return
    text = "\n".join(lines)
    if not any(line.startswith("#") for line in lines) and _looks_unreachable(text):
        raise EngineError(f"the Docker engine is not reachable: {text.strip()[-500:]}", command=cmd, output=text)
    if lines and _looks_disconnected(lines[-5:]):
        raise EngineError("the Docker engine went away during the build: " + " | ".join(lines[-3:]), command=cmd)
    raise BuildError(lines, cmd, code)


def _buildx_command(context: Path, dockerfile: Path, kwargs: Mapping[str, Any], builder: str | None) -> list[str]:
    """The argv of a build: the options :func:`build` and :func:`build_export` use, nothing else."""
    cmd = [_docker_binary(), "buildx", "build", "--progress", "plain", "--file", str(dockerfile)]
    if builder:
        cmd += ["--builder", builder]
    for tag in kwargs.get("tags", ()):
        cmd += ["--tag", tag]
    for key, value in dict(kwargs.get("labels", {})).items():
        cmd += ["--label", f"{key}={value}"]
    if kwargs.get("load"):
        cmd.append("--load")
    if kwargs.get("target"):
        cmd += ["--target", str(kwargs["target"])]
    if kwargs.get("cache") is False:
        cmd.append("--no-cache")
    output = kwargs.get("output")
    if output:
        cmd += ["--output", ",".join(f"{k}={v}" for k, v in dict(output).items())]
    for secret in kwargs.get("secrets", ()):
        cmd += ["--secret", secret]
    unknown = set(kwargs) - {"tags", "labels", "load", "target", "cache", "output", "secrets"}
    if unknown:  # a new option must be spelled above, not dropped silently
        raise TypeError(f"unsupported build options: {sorted(unknown)}")
    return [*cmd, str(context)]


#: the builds running now, each the leader of its own process group
_BUILDS: set[subprocess.Popen[bytes]] = set()
_BUILDS_LOCK = threading.Lock()


def _looks_disconnected(lines: Sequence[str]) -> bool:
    text = " ".join(lines).lower()
    return any(
        h in text
        for h in (
            "error reading from server: eof",
            "connection reset",
            "broken pipe",
            "transport is closing",
            "cannot connect to the docker daemon",
            "error during connect",
            "unexpected eof",
        )
    )


def stop_children(exclude: Iterable[int] = ()) -> None:
    """Stop every build this process is running (a prepare the user interrupted): each build's
    process group gets SIGINT, then SIGTERM, then SIGKILL, 3 s apart while it lives.
    ``exclude``: process ids of builds to leave alone."""
    skip = set(exclude)
    with _BUILDS_LOCK:
        running = [p for p in _BUILDS if p.pid not in skip]
    for proc in running:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    import signal as _signal

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group's id is the leader's pid (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            continue
        if not _group_alive(proc.pid):
            return
    # the leader is gone; a straggler of its group gets the last word
    try:
        os.killpg(proc.pid, _signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def pull(ref: str) -> str:
    """Pull ``ref``; returns its id. A clear error when it cannot be had."""
    DockerException, docker = _python_on_whales()
    try:
        docker.image.pull(ref, quiet=True)
    except DockerException as exc:
        detail = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit code {exc.return_code}"]
        raise EngineError(
            f"base image {ref} is not on this engine and could not be pulled: {detail[0]}\n"
            f"  map it to an image you have with cri.images (e.g. INVOKE_CRI_IMAGES_UBUNTU=...)",
            command=exc.docker_command,
        ) from None
    found = image_ids([ref]).get(ref)
    if found is None:
        raise EngineError(f"pulled {ref} but the engine does not show it")
    return found


def remove_images(refs: Iterable[str]) -> list[str]:
    """Remove the given images (missing ones are skipped); returns what was removed."""
    DockerException, docker = _python_on_whales()
    removed = []
    for ref in refs:
        try:
            docker.image.remove(ref, force=True, prune=True)
            removed.append(ref)
        except DockerException as exc:
            if "no such image" not in (exc.stderr or "").lower():
                raise EngineError(f"could not remove {ref}: {(exc.stderr or '').strip()}") from None
    return removed


def tag_image(image: str, ref: str) -> None:
    """``docker tag IMAGE REF`` (an id or a reference): a new name for an image, no rebuild."""
    cmd = [_docker_binary(), "image", "tag", image, ref]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EngineError(f"could not tag {image} as {ref}: {proc.stderr.strip()}", command=cmd, output=proc.stderr)


def untag(ref: str) -> None:
    """Remove one name of an image (``docker image rm`` without force: an image that has other
    names, or that a container uses, stays); a missing name is not an error."""
    cmd = [_docker_binary(), "image", "rm", "--no-prune", ref]
    subprocess.run(cmd, capture_output=True, text=True, timeout=60)


class ImageInfo(NamedTuple):
    id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    created: str


def list_images(labels: Mapping[str, str]) -> list[ImageInfo]:
    """Every image (tagged or not) that carries all these labels, inspected."""
    cmd = [_docker_binary(), "image", "ls", "--no-trunc", "--quiet"]  # tagged and dangling
    for k, v in labels.items():
        cmd += ["--filter", f"label={k}={v}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        if _looks_unreachable(proc.stderr):
            raise EngineError(f"the Docker engine is not reachable: {proc.stderr.strip()}", command=cmd)
        raise EngineError(f"docker image ls failed: {proc.stderr.strip()}", command=cmd)
    ids = sorted(set(proc.stdout.split()))
    if not ids:
        return []
    found = _cli_json(["image", "inspect", *ids], what="docker image inspect") or []
    return [
        ImageInfo(
            str(d["Id"]),
            tuple(d.get("RepoTags") or ()),
            (d.get("Config") or {}).get("Labels") or {},
            str(d.get("Created") or ""),
        )
        for d in found
        if isinstance(d, dict)
    ]


def shell(image: str, *, user: str, workdir: str, command: Sequence[str], tty: bool) -> int:
    """An interactive container of ``image`` (``--rm``); returns the exit code of ``command``."""
    cmd = [_docker_binary(), "run", "--rm", "-i", "--user", user, "--workdir", workdir, "--pull", "never"]
    if tty:
        cmd.append("-t")
    cmd += [image, *command]
    # Interactive: the user's terminal is wired straight to the container.
    return subprocess.call(cmd, env=dict(os.environ))


# ----------------------------------------------------------------------------------------------
# containers, networks, volumes (the local deploy target)


class ContainerState(NamedTuple):
    name: str
    exists: bool
    running: bool = False
    status: str = "missing"
    exit_code: int | None = None
    health: str | None = None
    ip: str | None = None
    image: str | None = None
    labels: Mapping[str, str] = MappingProxyType({})
    ports: Mapping[str, str] = MappingProxyType({})  # "8000/tcp" -> "127.0.0.1:49153"


@contextmanager
def _docker(what: str) -> Iterator[Any]:
    """python-on-whales' ``docker``; a DockerException inside becomes an EngineError naming
    ``what`` and the command's output."""
    DockerException, docker = _python_on_whales()
    try:
        yield docker
    except DockerException as exc:
        raise _docker_error(what, exc) from None


def _docker_error(what: str, exc: Any) -> EngineError:
    detail = (getattr(exc, "stderr", None) or str(exc)).strip()
    return EngineError(f"{what}: {detail[-800:]}", command=getattr(exc, "docker_command", ()))


def ensure_network(name: str, *, labels: Mapping[str, str], driver: str | None = None) -> None:
    DockerException, docker = _python_on_whales()
    try:
        if not docker.network.exists(name):
            docker.network.create(name, labels=dict(labels), driver=driver, attachable=driver == "overlay")
    except DockerException as exc:
        if "already exists" not in (exc.stderr or ""):
            raise _docker_error(f"could not create network {name}", exc) from None


def remove_network(name: str) -> bool:
    """Remove a network that no container (running or not) is attached to; True when removed.
    A network still in use, or already gone, stays as it is."""
    cmd = [_docker_binary(), "container", "ls", "-a", "--quiet", "--filter", f"network={name}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or proc.stdout.strip():
        return False
    proc = subprocess.run([_docker_binary(), "network", "rm", name], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0


def ensure_volume(name: str, *, labels: Mapping[str, str]) -> None:
    with _docker(f"could not create volume {name}") as docker:
        if not docker.volume.exists(name):
            docker.volume.create(name, labels=dict(labels))


def remove_volume(name: str) -> None:
    DockerException, docker = _python_on_whales()
    try:
        docker.volume.remove(name)
    except DockerException:
        pass


def run_container(
    image: str,
    *,
    name: str,
    network: str,
    labels: Mapping[str, str],
    env_file: Path | None = None,
    volumes: Sequence[tuple[str, str]] = (),
    publish: Sequence[tuple[str, int]] = (),
    health: Mapping[str, Any] | None = None,
    command: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    cap_add: Sequence[str] = (),
    create_only: bool = False,
    hostname: str | None = None,
) -> str:
    """Start (or only create) a detached container; returns its id."""
    kwargs: dict[str, Any] = dict(
        name=name,
        networks=[network],
        labels=dict(labels),
        volumes=list(volumes),
        publish=list(publish),
        pull="never",
        cap_drop=list(cap_drop),
        cap_add=list(cap_add),
    )
    if hostname:
        kwargs["hostname"] = hostname
    if env_file is not None:
        kwargs["env_files"] = [str(env_file)]
    for key, value in (health or {}).items():
        kwargs[key] = value
    with _docker(f"could not create container {name}") as docker:
        cid = str(docker.container.create(image, list(command), **kwargs).id)
    if not create_only:
        # Created, then started: a start that fails (a port taken, a command that cannot run)
        # removes this very container (by its id), so no `Created` one stays behind. `docker run`
        # would leave it, and removing by name could hit a container that is not ours.
        start_container(cid, name=name)
    return cid


def start_container(cid: str, *, name: str | None = None) -> None:
    """Start a created container; when it cannot start, remove it and raise."""
    DockerException, docker = _python_on_whales()
    try:
        docker.container.start(cid)
    except DockerException as exc:
        error = _docker_error(f"could not start container {name or cid}", exc)
        subprocess.run(
            [_docker_binary(), "container", "rm", "-f", "-v", cid], capture_output=True, text=True, timeout=60
        )
        raise error from None


def copy_into(container: str, local: Path, path: str) -> None:
    with _docker(f"could not copy {local.name} into {container}") as docker:
        docker.container.copy(str(local), (container, path))


def set_restart_policy(containers: Sequence[str], policy: str) -> None:
    """``docker update --restart``: applied to running containers, no restart now."""
    if not containers:
        return
    cmd = [_docker_binary(), "container", "update", "--restart", policy, *containers]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EngineError(
            f"could not set the restart policy of {', '.join(containers)}: {proc.stderr.strip()[-800:]}", command=cmd
        )


def signal(container: str, sig: str) -> None:
    with _docker(f"could not signal {container}") as docker:
        docker.container.kill(container, signal=sig)


def state(name: str, network: str | None = None) -> ContainerState:
    """One container's state, read once (python-on-whales re-inspects on every property access)."""
    cmd = [_docker_binary(), "container", "inspect", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        if _looks_unreachable(proc.stderr):
            raise EngineError(f"the Docker engine is not reachable: {proc.stderr.strip()}", command=cmd)
        return ContainerState(name, False)
    data = json.loads(proc.stdout)[0]
    st = data.get("State", {})
    nets = (data.get("NetworkSettings") or {}).get("Networks") or {}
    ip = None
    if network and network in nets:
        ip = nets[network].get("IPAddress") or None
    elif nets:
        ip = next(iter(nets.values())).get("IPAddress") or None
    ports: dict[str, str] = {}
    for key, bindings in ((data.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if bindings:
            ports[key] = f"{bindings[0].get('HostIp') or '0.0.0.0'}:{bindings[0].get('HostPort')}"
    return ContainerState(
        name=name,
        exists=True,
        running=bool(st.get("Running")),
        status=str(st.get("Status", "")),
        exit_code=st.get("ExitCode"),
        health=(st.get("Health") or {}).get("Status"),
        ip=ip,
        image=(data.get("Config") or {}).get("Image"),
        labels=(data.get("Config") or {}).get("Labels") or {},
        ports=ports,
    )


def list_containers(labels: Mapping[str, str]) -> list[str]:
    """Names of the containers (running or not) that carry all these labels."""
    return _names("container", labels, "-a")


def _names(kind: str, labels: Mapping[str, str], *flags: str, strict: bool = True) -> list[str]:
    """``docker <kind> ls`` names filtered by labels (``strict=False``: [] when the call fails)."""
    cmd = [_docker_binary(), kind, "ls", *flags, "--format", "{{.Names}}" if kind == "container" else "{{.Name}}"]
    for k, v in labels.items():
        cmd += ["--filter", f"label={k}={v}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        if not strict:
            return []
        raise EngineError(f"docker {kind} ls failed: {proc.stderr.strip()}", command=cmd)
    return sorted(proc.stdout.split())


def logs(name: str, *, tail: int | None = None) -> str:
    cmd = [_docker_binary(), "logs", name]
    if tail is not None:
        cmd += ["--tail", str(tail)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return (proc.stdout + proc.stderr) if proc.returncode == 0 else ""


def follow_logs(names: Sequence[str], *, tail: int = 50) -> int:
    """Stream the logs of containers to the terminal until interrupted."""
    return _follow([[_docker_binary(), "logs", "--follow", "--tail", str(tail), n] for n in names])


def _follow(commands: Sequence[Sequence[str]]) -> int:
    """Run log streams side by side until they end or the user interrupts them."""
    procs = [subprocess.Popen(list(cmd)) for cmd in commands]
    try:
        return max(p.wait() for p in procs) if procs else 0
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        return 130


def exec_in(
    name: str, command: Sequence[str], *, user: str | None = None, workdir: str | None = None, timeout: float = 30
) -> tuple[int, str]:
    cmd = [_docker_binary(), "exec"]
    if user:
        cmd += ["--user", user]
    if workdir:
        cmd += ["--workdir", workdir]
    cmd += [name, *command]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    return proc.returncode, proc.stdout + proc.stderr


def remove_containers(names: Sequence[str], *, stop_timeout: int = 10) -> None:
    """Stop (SIGTERM, then SIGKILL after ``stop_timeout``) and remove; missing ones are skipped."""
    if not names:
        return
    cmd = [_docker_binary(), "container", "stop", "--time", str(stop_timeout), *names]
    subprocess.run(cmd, capture_output=True, text=True, timeout=stop_timeout + 60)
    cmd = [_docker_binary(), "container", "rm", "-f", "-v", *names]
    subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def stop_containers(names: Sequence[str], *, stop_timeout: int = 10) -> None:
    if names:
        cmd = [_docker_binary(), "container", "stop", "--time", str(stop_timeout), *names]
        subprocess.run(cmd, capture_output=True, text=True, timeout=stop_timeout + 60)


# ---- swarm and registry (targets/swarm.py) ----
#
# Reads go straight to the docker CLI as JSON (python-on-whales re-inspects on every property
# access); `docker stack deploy`, pushes and removals go through python-on-whales.


def _cli_json(args: Sequence[str], *, what: str, timeout: float = 60) -> Any:
    """``docker ARGS`` whose stdout is JSON; None when Docker says the object does not exist."""
    import json

    cmd = [_docker_binary(), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EngineError(f"{what}: the Docker engine did not answer within {timeout:.0f} s", command=cmd) from None
    if proc.returncode != 0:
        low = proc.stderr.lower()
        if _looks_unreachable(proc.stderr):
            raise EngineError(f"the Docker engine is not reachable: {proc.stderr.strip()}", command=cmd)
        if "not found" in low or "no such" in low:
            return None
        if "not a swarm manager" in low or "this node is not" in low:
            raise EngineError(f"{what}: this Docker engine is not a Swarm manager ({proc.stderr.strip()})", command=cmd)
        raise EngineError(f"{what}: {proc.stderr.strip()[-800:]}", command=cmd)
    text = proc.stdout.strip()
    return json.loads(text) if text else None


def swarm_state() -> dict[str, Any]:
    """``docker info``'s Swarm section: LocalNodeState, NodeID, ControlAvailable, Cluster.ID…"""
    found = _cli_json(["info", "--format", "{{json .Swarm}}"], what="docker info")
    return found if isinstance(found, dict) else {}


def network_exists(name: str) -> bool:
    return _cli_json(["network", "inspect", name], what=f"docker network inspect {name}") is not None


def push_image(image: str, ref: str) -> str:
    """Push local ``image`` as ``ref`` (registry/repository:tag); returns ``ref@sha256:…``.

    The registry tag is removed locally afterwards (the image keeps its own tag): nodes pull by
    digest. Credentials are Docker's own (``docker login``)."""
    with _docker(f"could not push {ref}") as docker:
        docker.image.tag(image, ref)
        docker.image.push(ref, quiet=True)
    repo = ref.rsplit(":", 1)[0] if ref.rfind(":") > ref.rfind("/") else ref
    digests = (
        _cli_json(["image", "inspect", "--format", "{{json .RepoDigests}}", ref], what=f"docker image inspect {ref}")
        or []
    )
    digest = next((d.split("@", 1)[1] for d in digests if d.split("@", 1)[0] == repo), None)
    remove_images([ref])
    if digest is None:
        raise EngineError(f"pushed {ref} but the engine does not show its registry digest")
    return f"{ref}@{digest}"


def stack_deploy(stack: str, compose_file: Path, *, on_line: Callable[[str], None]) -> None:
    """``docker stack deploy --resolve-image always --with-registry-auth``: what it prints goes
    to ``on_line``, never to this process's stdout (a ``--json`` document lives there)."""
    import sys
    import tempfile

    DockerException, docker = _python_on_whales()
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as out:
        try:
            os.dup2(out.fileno(), 1)
            try:
                docker.stack.deploy(stack, [str(compose_file)], resolve_image="always", with_registry_auth=True)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
        except DockerException as exc:
            raise _docker_error(f"docker stack deploy {stack} failed", exc) from None
        finally:
            out.seek(0)
            for line in out.read().decode(errors="replace").splitlines():
                if line.strip():
                    on_line(line.rstrip())


def service_state(name: str) -> dict[str, Any] | None:
    """``docker service inspect NAME`` (Spec, PreviousSpec, UpdateStatus, Endpoint…), None if absent."""
    found = _cli_json(["service", "inspect", name], what=f"docker service inspect {name}")
    return found[0] if found else None


def service_tasks(name: str) -> list[dict[str, Any]]:
    """Every task of a service that Swarm still remembers (current and history), inspected."""
    cmd = [_docker_binary(), "service", "ps", "--no-trunc", "--quiet", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        if _looks_unreachable(proc.stderr):
            raise EngineError(f"the Docker engine is not reachable: {proc.stderr.strip()}", command=cmd)
        return []
    ids = sorted(set(proc.stdout.split()))
    if not ids:
        return []
    found = _cli_json(["inspect", "--type", "task", *ids], what=f"docker inspect (tasks of {name})") or []
    return [t for t in found if isinstance(t, dict)]


def swarm_nodes() -> list[dict[str, str]]:
    """The nodes a manager knows (``docker node ls``): ID (short), Hostname, Status (Ready,
    Down, Unknown), Availability (Active, Pause, Drain), ManagerStatus; [] when not a manager."""
    cmd = [_docker_binary(), "node", "ls", "--format", "{{json .}}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out: list[dict[str, str]] = []
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            out.append({k: str(v) for k, v in found.items()})
    return out


def list_services(labels: Mapping[str, str]) -> list[str]:
    return _names("service", labels)


def rollback_service(name: str) -> None:
    """``docker service rollback --detach``: Swarm returns the service to its previous spec."""
    cmd = [_docker_binary(), "service", "rollback", "--detach", "--quiet", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EngineError(f"docker service rollback {name} failed: {proc.stderr.strip()}", command=cmd)


def remove_services(names: Sequence[str]) -> None:
    DockerException, docker = _python_on_whales()
    for name in names:
        try:
            docker.service.remove(name)
        except DockerException as exc:
            if "not found" not in (exc.stderr or "").lower():
                raise _docker_error(f"could not remove service {name}", exc) from None


def remove_stack(stack: str) -> None:
    """``docker stack rm``: what is left of a stack (networks, configs) once its services are gone."""
    cmd = [_docker_binary(), "stack", "rm", stack]
    subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def wait_containers_gone(labels: Mapping[str, str], *, timeout: float) -> bool:
    """Wait until no container on this engine carries these labels (Swarm removes the containers
    of removed services in the background)."""
    import time

    deadline = time.monotonic() + timeout
    while list_containers(labels):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def service_logs(target: str, *, tail: int | None = None) -> str:
    """``docker service logs`` of a service or of one task (every line prefixed with its task)."""
    cmd = [_docker_binary(), "service", "logs", "--no-trunc"]
    if tail is not None:
        cmd += ["--tail", str(tail)]
    cmd.append(target)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return ""
    return (proc.stdout + proc.stderr) if proc.returncode == 0 else ""


def follow_service_logs(names: Sequence[str], *, tail: int = 50) -> int:
    """Stream the logs of services to the terminal until interrupted."""
    return _follow([[_docker_binary(), "service", "logs", "--follow", "--tail", str(tail), n] for n in names])


def list_volumes(labels: Mapping[str, str]) -> list[str]:
    return _names("volume", labels, strict=False)


def list_configs(labels: Mapping[str, str]) -> list[str]:
    return _names("config", labels, strict=False)


def remove_configs(names: Sequence[str]) -> None:
    """Remove Swarm configs; one still used by a service stays (Docker refuses)."""
    for name in names:
        subprocess.run([_docker_binary(), "config", "rm", name], capture_output=True, text=True, timeout=60)


def image_references(repository: str) -> list[str]:
    """Local references (``repo:tag`` and ``repo@sha256:…``) of one repository."""
    cmd = [_docker_binary(), "image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", repository]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    refs: list[str] = []
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        repo, tag, digest = (line.split() + ["", "", ""])[:3]
        if tag and tag != "<none>":
            refs.append(f"{repo}:{tag}")
        if digest and digest != "<none>":
            refs.append(f"{repo}@{digest}")
    return refs


def ingress_probe(image: str, *, address: str, labels: Mapping[str, str], timeout: float = 60) -> tuple[bool, str]:
    """Does Swarm's routing mesh work here? A one-task service of ``image`` (an HAProxy image)
    answers HTTP on a port published through the ingress network; True when ``address`` gets its
    answer. The service is removed afterwards."""
    import http.client
    import secrets as _secrets
    import time

    name = f"cri-ingress-probe-{_secrets.token_hex(4)}"
    config = (
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n"
        "frontend probe\n  bind :8080\n  http-request return status 200 content-type text/plain string cri-ingress-probe\n"
    )
    cmd = [
        _docker_binary(),
        "service",
        "create",
        "--detach",
        "--quiet",
        "--name",
        name,
        "--restart-condition",
        "none",
        "--publish",
        "mode=ingress,target=8080",
        "--env",
        f"CRI_PROBE_CONFIG={config}",
        "--entrypoint",
        "/bin/sh",
    ]
    for k, v in labels.items():
        cmd += ["--label", f"{k}={v}"]
    cmd += [image, "-c", 'printf "%s\\n" "$CRI_PROBE_CONFIG" > /tmp/probe.cfg && exec haproxy -db -f /tmp/probe.cfg']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return (
            False,
            f"a service publishing through the ingress network could not be created: {proc.stderr.strip()[-300:]}",
        )
    try:
        deadline = time.monotonic() + timeout
        port = None
        running_since = None
        last = "its task did not start"
        while time.monotonic() < deadline:
            st = service_state(name) or {}
            for p in (st.get("Endpoint") or {}).get("Ports") or []:
                port = p.get("PublishedPort") or port
            tasks = service_tasks(name)
            states = [(t.get("Status") or {}).get("State") for t in tasks]
            if any(s in ("failed", "rejected", "complete") for s in states):
                err = next(
                    ((t.get("Status") or {}).get("Err") for t in tasks if (t.get("Status") or {}).get("Err")), ""
                )
                return False, f"the probe task failed: {err or states}"
            if "running" in states and port:
                running_since = running_since or time.monotonic()
                conn = http.client.HTTPConnection(address, int(port), timeout=2)
                try:
                    conn.request("GET", "/", headers={"Connection": "close"})
                    body = conn.getresponse().read().decode(errors="replace")
                    if "cri-ingress-probe" in body:
                        return True, f"a task answered through the ingress port {port}"
                    last = f"unexpected answer on port {port}: {body[:80]!r}"
                except OSError as exc:
                    last = f"{address}:{port} did not answer through the routing mesh ({exc})"
                finally:
                    conn.close()
                if time.monotonic() - running_since > 6:
                    return False, last
            time.sleep(0.5)
        return False, last
    finally:
        remove_services([name])


def health_output(container: str) -> str:
    """The output of a container's last health check ("" when it has none or is not on this engine)."""
    found = _cli_json(
        ["container", "inspect", "--format", "{{json .State.Health}}", container],
        what=f"docker container inspect {container}",
    )
    log = (found or {}).get("Log") or [] if isinstance(found, dict) else []
    last = log[-1] if log else {}
    return str(last.get("Output") or "").strip() if isinstance(last, dict) else ""
