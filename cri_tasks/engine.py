"""The one module that talks to Docker.

Cheap questions (does this image exist, what is its id) run the ``docker`` CLI directly, so a
cache hit never imports python-on-whales (about 230 ms). Builds, pulls, runs and removals go
through python-on-whales, imported on first use. python-on-whales picks exception subclasses by
matching stderr text (a failed ``RUN`` can come back as ``NoSuchNetwork``), so every call here
catches ``DockerException`` and classifies the failure itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import EngineError

_UNREACHABLE_HINTS = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "error during connect",
    "connection refused",
    "no such file or directory",
)


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
    out = _inspect(list(refs))
    if out is not None and len(out) == len(refs):
        return dict(zip(refs, out))
    result: dict[str, str | None] = {}
    for ref in refs:
        one = _inspect([ref])
        result[ref] = one[0] if one else None
    return result


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


@dataclass
class BuildLog:
    """Every line a build printed, and the lines of each BuildKit vertex (``#N``)."""

    lines: list[str] = field(default_factory=list)


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
    from python_on_whales import DockerException, docker

    lines: list[str] = []
    kwargs: dict[str, Any] = dict(
        file=str(dockerfile),
        tags=list(tags),
        labels=dict(labels),
        load=True,
        progress="plain",
        stream_logs=True,
        pull=False,
    )
    if builder:
        kwargs["builder"] = builder
    if target:
        kwargs["target"] = target
    if no_cache:
        kwargs["cache"] = False
    try:
        for line in docker.buildx.build(str(context), **kwargs):
            line = line.rstrip("\n")
            lines.append(line)
            on_line(line)
    except DockerException as exc:
        text = "\n".join(lines) + "\n" + (exc.stderr or "")
        if not any(line.startswith("#") for line in lines) and _looks_unreachable(text):
            raise EngineError(
                f"the Docker engine is not reachable: {text.strip()[-500:]}",
                command=exc.docker_command,
                output=text,
            ) from None
        raise BuildError(lines, exc.docker_command, exc.return_code) from None
    ids = image_ids([tags[0]])
    image_id = ids.get(tags[0])
    if image_id is None:
        raise EngineError(f"buildx reported success but the engine has no image {tags[0]}")
    return image_id


def pull(ref: str) -> str:
    """Pull ``ref``; returns its id. A clear error when it cannot be had."""
    from python_on_whales import DockerException, docker

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
    from python_on_whales import DockerException, docker

    removed = []
    for ref in refs:
        try:
            docker.image.remove(ref, force=True, prune=True)
            removed.append(ref)
        except DockerException as exc:
            if "no such image" not in (exc.stderr or "").lower():
                raise EngineError(f"could not remove {ref}: {(exc.stderr or '').strip()}") from None
    return removed


def shell(image: str, *, user: str, workdir: str, command: Sequence[str], tty: bool) -> int:
    """An interactive container of ``image`` (``--rm``); returns the exit code of ``command``."""
    cmd = [_docker_binary(), "run", "--rm", "-i", "--user", user, "--workdir", workdir, "--pull", "never"]
    if tty:
        cmd.append("-t")
    cmd += [image, *command]
    # Interactive: the user's terminal is wired straight to the container.
    return subprocess.call(cmd, env=dict(os.environ))
