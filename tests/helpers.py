"""Helpers for tests that drive cri-tasks the way users do: a project folder, real processes."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

TASKS_PY = "from cri_tasks import collection\n\nns = collection()\n"

#: the JSON Schema of every --json document (docs/json.md)
OUTPUT_SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "cri-output.schema.json").read_text())


def check_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A --json document, validated against the schema (a regression in any task's shape fails)."""
    import jsonschema

    jsonschema.validate(doc, OUTPUT_SCHEMA)
    return doc


def make_project(
    root: Path,
    zerops_yml: str,
    *,
    files: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """A project folder with zerops.yml, a user's tasks.py and invoke.yaml holding ``cri`` settings."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "zerops.yml").write_text(textwrap.dedent(zerops_yml).lstrip())
    (root / "tasks.py").write_text(TASKS_PY)
    if settings is not None:
        (root / "invoke.yaml").write_text(yaml.safe_dump({"cri": dict(settings)}))
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def invoke(
    project: Path, *args: str, env: Mapping[str, str] | None = None, input: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``invoke ARGS`` in ``project`` as a real process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
    )


def prepare_json(project: Path, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``invoke prepare --json ARGS``; asserts it succeeded and returns the parsed document."""
    proc = invoke(project, "prepare", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return check_document(json.loads(proc.stdout))


def only(doc: dict[str, Any]) -> dict[str, Any]:
    (entry,) = doc["setups"]
    return entry  # type: ignore[no-any-return]


def image_name(project: Path, repository: str, setup: str = "app") -> str:
    """``<repository>/<project id>/<setup>``: the name cri-tasks gives a project's images."""
    from cri_tasks.model import Project
    from cri_tasks.runtime_plan import project_id

    return f"{repository}/{project_id(Project(project / 'zerops.yml', ()))}/{setup}"


def stop_and_clean(project: Path) -> None:
    """Stop a test project's deployment and remove its network (only this project's)."""
    import subprocess as sp

    from cri_tasks.model import Project
    from cri_tasks.runtime_plan import project_id

    invoke(project, "stop")
    pid = project_id(Project(project / "zerops.yml", ()))
    sp.run(["docker", "network", "rm", f"cri-{pid}"], capture_output=True)
    # the zsc execOnce stores (kept by stop, as the versions are)
    listed = sp.run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=io.cri-tasks.project={pid}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if listed:
        sp.run(["docker", "volume", "rm", *listed], capture_output=True)


def get(url: str, path: str = "/") -> str:
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return body
    finally:
        conn.close()


class Client:
    """Requests in a loop from another thread, as users would send them during a deploy."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 300  # bounded, whatever happens to the test
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.bodies.append(get(self.url))
            except Exception as exc:
                self.failures.append(repr(exc))

    def __enter__(self) -> Client:
        self._thread.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in a file (which must hold it)."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def deploy(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``invoke deploy --json ARGS``; the parsed document ({} when the deploy printed none)."""
    proc = invoke(project, "deploy", "--json", *args)
    doc = check_document(json.loads(proc.stdout)) if proc.stdout.strip().startswith("{") else {}
    return proc, doc


def update_under_load(app: Path, url: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Deploy version 2 of the example while a client requests ``url`` continuously: it must
    see no failure, and the answers change from version 1 to version 2 at the same URL."""
    edit(app / "src" / "hello.erl", "version 1", "version 2")
    with Client(url) as client:
        proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    (second,) = doc["setups"]
    assert second["version"] == 2 and second["urls"] == [url]
    assert client.failures == []
    assert len(client.bodies) > 50
    assert client.bodies[0].startswith("Hello from the BEAM, version 1")
    assert client.bodies[-1].startswith("Hello from the BEAM, version 2")
    # The deploy's own measure of its switch agrees with what the client saw.
    assert second["switch"]["failed"] == 0 and second["switch"]["requests"] > 0
    return proc, second


def rollback_under_load(app: Path, url: str) -> None:
    """Roll back to version 1 while a client requests ``url``: no failure, version 1 answers."""
    with Client(url) as client:
        rolled = invoke(app, "rollback", "--setup", "app", "--json")
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout)["setups"][0]["version"] == 1
    assert client.failures == []
    assert get(url).startswith("Hello from the BEAM, version 1")


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``mount`` (a folder this test made), unmounted afterwards whatever
    happens; skips the test where this process may not mount one."""
    import pytest

    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte with a file there; returns it."""
    path = folder / "filler"
    with open(path, "ab", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return path


def records(cache: Path) -> dict[str, Any]:
    """Every record in a cache folder's database, read without writing anything."""
    db = sqlite3.connect(f"file:{cache / 'records' / 'cache.db'}?mode=ro&immutable=1", uri=True)
    try:
        return dict(db.execute("SELECT key, value FROM Cache ORDER BY key").fetchall())
    finally:
        db.close()


def start_invoke(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_log(
    project: Path,
    cache: Path,
    text: str,
    timeout: float = 120,
    *,
    since: frozenset[Path] | set[Path] = frozenset(),
    phase: str = "prepare",
) -> None:
    """Wait until a ``phase`` log (not one of ``since``: earlier attempts) shows ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in (cache / "logs").rglob(f"{phase}-*.log"):
            if log not in since and text in log.read_text(errors="replace"):
                return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in a {phase} log")


def buildx_processes(marker: str) -> list[int]:
    """Processes on this machine whose command line mentions ``marker`` (our image tag)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and "buildx" in cmdline:
                found.append(int(entry))
    return found
