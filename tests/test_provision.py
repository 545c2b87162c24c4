"""scripts/provision-engine decides what to install and start. It runs for real here, with a PATH
whose installers and daemons (apt-get, dpkg, dockerd, debootstrap, docker-registry...) are stubs
that record their calls: an engine that answers (the real one) gets nothing installed or
started; Docker CE's packages without a running engine get no docker.io; only a machine with
no engine at all gets docker.io and a dockerd."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BASE_IMAGE

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "provision-engine"

#: what installs or starts something (recorded), and what only answers questions
INSTALLERS = ["apt-get", "apt", "dpkg", "dpkg-deb", "dockerd", "debootstrap", "docker-registry", "systemctl", "service"]

RECORD = 'echo "$(basename "$0") $*" >>"$STUB_LOG"\n'
STUBS = {
    # `dpkg-query -W -f=... PKG`: installed when PKG is listed in STUB_INSTALLED
    "dpkg-query": 'pkg=${@: -1}\ncase " $STUB_INSTALLED " in *" $pkg "*) printf "install ok installed";; *) exit 1;; esac\n',
    "id": 'if [ "$1" = -u ]; then echo "${STUB_UID:-0}"; else exec /usr/bin/id "$@"; fi\n',
    # a minimal root file system for `docker import`
    "debootstrap": 'mkdir -p "$3/etc" && echo "stub root" >"$3/etc/os-release"\n',
    # serves GET /v2/ on the address of the config it is given, as the real registry would
    "docker-registry": (
        'addr=$(awk \'$1 == "addr:" {print $2}\' "$2")\n'
        'mkdir -p "$STUB_DIR/www/v2" && echo "{}" >"$STUB_DIR/www/v2/index.html"\n'
        'echo $$ >"$STUB_DIR/registry.pid"\n'
        'exec python3 -m http.server --bind "${addr%:*}" "${addr##*:}" --directory "$STUB_DIR/www"\n'
    ),
}
#: a docker CLI for machines with no engine: the plugin answers, the engine does not
NO_ENGINE_DOCKER = (
    'case "$1" in buildx) echo "github.com/docker/buildx v0.13.1 stub";; *) echo "Cannot connect" >&2; exit 1;; esac\n'
)


def write_stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in INSTALLERS:
        write_stub(folder, name, RECORD + STUBS.get(name, ""))
    for name in ("dpkg-query", "id"):
        write_stub(folder, name, STUBS[name])
    return folder


def provision(stubs: Path, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = tmp_path / "calls.log"
    log.touch()
    full = {
        **os.environ,
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "STUB_DIR": str(tmp_path),
        "CRI_PROVISION_DIR": str(tmp_path / "state"),
        **env,
    }
    proc = subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=120)
    return proc, log.read_text().splitlines()


def free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def registry() -> Iterator[str]:
    """Something answering GET /v2/ the way a registry does."""

    class V2(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/v2/" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), V2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.engine
def test_an_engine_that_answers_gets_nothing_installed_or_started(stubs: Path, tmp_path: Path, registry: str) -> None:
    proc, calls = provision(stubs, tmp_path, CRI_BASE_IMAGE=BASE_IMAGE, CRI_REGISTRY_ADDR=registry)
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert "an engine answers with buildx" in proc.stderr and "installing and starting nothing" in proc.stderr
    assert "provision: ready: engine" in proc.stderr


@pytest.mark.engine
def test_with_an_engine_only_the_missing_base_image_and_registry_are_added(
    stubs: Path, tmp_path: Path, unique: str
) -> None:
    image = f"cri-test-{unique}/base:1"
    address = free_address()
    try:
        proc, calls = provision(
            stubs,
            tmp_path,
            CRI_BASE_IMAGE=image,
            CRI_REGISTRY_ADDR=address,
            STUB_INSTALLED="debootstrap docker-registry",
        )
        assert proc.returncode == 0, proc.stderr
        assert [c.split()[0] for c in calls] == ["debootstrap", "docker-registry"]
        assert calls[1] == f"docker-registry serve {tmp_path}/state/registry.yml"
        # the image holds the root file system debootstrap made (it has no programs to run)
        cid = subprocess.run(
            ["docker", "create", image, "/none"], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            copied = subprocess.run(
                ["docker", "cp", f"{cid}:/etc/os-release", "-"], capture_output=True, check=True
            ).stdout
        finally:
            subprocess.run(["docker", "rm", cid], capture_output=True)
        assert b"stub root\n" in copied
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
        pid_file = tmp_path / "registry.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def no_engine(stubs: Path, tmp_path: Path) -> dict[str, str]:
    write_stub(stubs, "docker", NO_ENGINE_DOCKER)
    return {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}


@pytest.mark.parametrize("package", ["docker-ce", "containerd.io"])
def test_docker_ce_without_a_running_engine_is_never_replaced_by_docker_io(
    stubs: Path, tmp_path: Path, package: str
) -> None:
    proc, calls = provision(stubs, tmp_path, STUB_INSTALLED=package, **no_engine(stubs, tmp_path))
    assert proc.returncode == 1
    assert calls == []
    assert f"Docker's packages are installed ({package}) but no engine answers: start it" in proc.stderr
    assert "systemctl start docker" in proc.stderr


def test_a_machine_without_any_engine_gets_docker_io_and_a_dockerd(stubs: Path, tmp_path: Path) -> None:
    proc, calls = provision(stubs, tmp_path, CRI_ENGINE_WAIT="1", **no_engine(stubs, tmp_path))
    assert proc.returncode == 1  # the stub dockerd never answers
    installs = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert len(installs) == 1 and "docker.io" in installs[0].split()
    assert "dockerd --storage-driver=overlay2" in calls
    assert "dockerd did not answer within 1 s" in proc.stderr


def test_without_an_engine_and_without_root_it_installs_nothing_and_says_why(stubs: Path, tmp_path: Path) -> None:
    proc, calls = provision(stubs, tmp_path, STUB_UID="1000", **no_engine(stubs, tmp_path))
    assert proc.returncode == 1 and calls == []
    assert "installing and starting a Docker engine needs root" in proc.stderr
