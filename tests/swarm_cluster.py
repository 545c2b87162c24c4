"""A Docker Swarm of several real nodes on one machine, for the several-node tests (issue 17).

Each node is a ``dockerd`` in a network namespace of its own, joined to a bridge of the tests'
own with a veth pair; the nodes share nothing with the machine's main engine: their own data
root, exec root, socket, pid file, cgroup parent and address range, and a registry instance of
their own (Debian's ``docker-registry``) on the bridge address. ``dockerd`` is started with
``nsenter --net=`` rather than ``ip netns exec``, which remounts /sys and hides the cgroups.

Only the bridge's addresses and loopback are ever contacted. Everything this module creates is
named with :data:`PREFIX` (namespaces, bridge, veths, cgroups, iptables comment) or lives under
:attr:`Cluster.root`, so :func:`clean` removes what a killed earlier run left behind, and
nothing else. Processes are only ever ended by their pid, found through our pid files, our
folder in their command line, our cgroups or our namespaces.

The nodes cannot reach the internet, so they cannot run ``apt-get`` against a mirror: the tests
map ``ubuntu`` to :data:`NODE_BASE`, the local Debian base image with the packages the default
Gleam environment, the front proxy and these checks install already installed and no apt
sources (``apt-get update``/``install`` then succeed offline). It is built on the main engine
(warm cache, network) and loaded into each node with ``docker save | docker load``; the app
and proxy images reach the nodes through the registry, by digest, as cri-tasks pushes them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "crisw"
BRIDGE = f"{PREFIX}0"
#: the bridge's range: not docker0 (172.17/16), docker_gwbridge (192.168.48/20) or eth0's
SUBNET = "10.213.7"
HOST_ADDR = f"{SUBNET}.1"
REGISTRY_PORT = 5000
#: overlay networks of the cluster come from here (not the bridge's range)
ADDR_POOL = "10.214.0.0/16"
COMMENT = "cri-swarm-nodes"
NODE_BASE = "cri-swarm-nodes/debian:offline"
#: Erlang comes as the runtime template installs it (templates/erlang.sh, with the newest OTP any
#: supported Gleam needs): the nodes then find it installed and need no source.
NODE_BASE_DOCKERFILE = """
FROM {base}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates curl bash git sudo tar gzip \\
 && rm -rf /var/lib/apt/lists/*
RUN {erlang}
RUN apt-get update && apt-get install -y --no-install-recommends haproxy netcat-openbsd \\
 && rm -rf /var/lib/apt/lists/* /etc/apt/sources.list.d/* /etc/apt/sources.list /etc/apt/preferences.d/* \\
 && touch /etc/apt/sources.list
"""


def default_root() -> Path:
    return Path(tempfile.gettempdir()) / "cri-swarm-nodes"


def run(
    *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=input is None, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(args)} failed ({proc.returncode}): {str(proc.stderr).strip()[-800:]}")
    return proc  # type: ignore[return-value]


class ClusterError(RuntimeError):
    pass


@dataclass
class Node:
    name: str  # also the netns name and the cgroup parent
    index: int
    root: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)  # its dockerd (same pid)

    @property
    def addr(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def sock(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def pidfile(self) -> Path:
        return self.dir / "dockerd.pid"

    @property
    def veth(self) -> str:
        return f"{PREFIX}h{self.index}"

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run("docker", "-H", self.host, *args, check=check, timeout=timeout)


@dataclass
class Cluster:
    root: Path
    nodes: list[Node] = field(default_factory=list)
    registry_proc: subprocess.Popen[bytes] | None = None
    #: seconds per step of :func:`create`
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def registry(self) -> str:
        return f"{HOST_ADDR}:{REGISTRY_PORT}"

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    # -- nodes ----------------------------------------------------------------------------------

    def start_dockerd(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        log = open(node.dir / "dockerd.log", "ab")
        # A UTS namespace of its own, so each node has its own hostname (what `docker node ls`
        # and `invoke status` show).
        node.proc = subprocess.Popen(
            [
                "unshare",
                "--uts",
                "sh",
                "-c",
                f'hostname {node.name} && exec "$@"',
                "sh",
                "nsenter",
                f"--net=/run/netns/{node.name}",
                "dockerd",
                "--data-root",
                str(node.dir / "data"),
                "--exec-root",
                str(node.dir / "exec"),
                "--pidfile",
                str(node.pidfile),
                "-H",
                node.host,
                "--bip",
                f"10.215.{node.index}.1/24",
                "--insecure-registry",
                self.registry,
                "--cgroup-parent",
                f"/{node.name}",
                "--storage-driver",
                "overlay2",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while node.docker("info", "--format", "{{.ID}}", check=False, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                tail = (node.dir / "dockerd.log").read_text(errors="replace")[-1500:]
                raise ClusterError(f"dockerd of {node.name} did not answer within 60 s:\n{tail}")
            time.sleep(0.3)

    def kill_node(self, node: Node) -> None:
        """The node's machine dies: dockerd, its containerd, shims and every container process
        are killed at once (SIGKILL), nothing is shut down cleanly."""
        for pid in _node_pids(node):
            _kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _node_pids(node) and time.monotonic() < deadline:
            time.sleep(0.2)
        _reap(node.proc)

    def stop_dockerd(self, node: Node, timeout: float = 25) -> None:
        pid = _read_pid(node.pidfile)
        if pid is not None:
            _kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        self.kill_node(node)

    def close(self) -> None:
        """Remove the whole cluster (see :func:`clean`) and reap the processes we started."""
        try:
            clean(self.root, len(self.nodes))
        finally:
            for proc in [n.proc for n in self.nodes] + [self.registry_proc]:
                _reap(proc)

    # -- registry -------------------------------------------------------------------------------

    def registry_json(self, path: str) -> object:
        with urllib.request.urlopen(f"http://{self.registry}{path}", timeout=10) as r:
            return json.loads(r.read().decode())


def _reap(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait(timeout=30)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line holds ``text`` (our own folder: dockerd, containerd, shims)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(int(entry.name))
    return out


def _cgroup_pids(name: str) -> list[int]:
    out: set[int] = set()
    for ctrl in ("pids", "memory", "cpu,cpuacct", "systemd"):
        base = Path("/sys/fs/cgroup") / ctrl / name
        if base.is_dir():
            for procs in base.rglob("cgroup.procs"):
                try:
                    out.update(int(p) for p in procs.read_text().split())
                except OSError:
                    pass
    return sorted(out)


def _netns_pids(name: str) -> list[int]:
    proc = run("ip", "netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()] if proc.returncode == 0 else []


def _node_pids(node: Node) -> list[int]:
    pids = set(_pids_mentioning(str(node.dir) + "/")) | set(_cgroup_pids(node.name)) | set(_netns_pids(node.name))
    pid = _read_pid(node.pidfile)
    if pid is not None and _alive(pid):
        pids.add(pid)
    return sorted(p for p in pids if _alive(p))


def _remove_cgroups(name: str) -> None:
    for base in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [base]:
            try:
                d.rmdir()
            except OSError:
                pass


def _unmount_under(root: Path) -> None:
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == str(root) or point.startswith(str(root) + "/"):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        run("umount", "-l", point, check=False)


def _iptables_rules() -> list[list[str]]:
    proc = run("iptables", "-S", "DOCKER-USER", check=False)
    return [
        line.split()[2:] for line in proc.stdout.splitlines() if COMMENT in line and line.startswith("-A DOCKER-USER")
    ]


def clean(root: Path, count: int = 3) -> None:
    """Remove everything a cluster under ``root`` (ours, by name) created: also a killed run's."""
    names = {f"{PREFIX}-n{i}" for i in range(1, count + 1)}
    listed = run("ip", "netns", "list", check=False).stdout.split()
    names |= {n for n in listed if n.startswith(f"{PREFIX}-n")}
    nodes = [Node(n, int(n.rsplit("n", 1)[1]) if n.rsplit("n", 1)[1].isdigit() else 0, root) for n in sorted(names)]
    for node in nodes:  # dockerd first, gracefully: it unmounts and stops its containers
        pid = _read_pid(node.pidfile)
        if (
            pid is not None
            and _alive(pid)
            and str(node.dir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ):
            _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any((p := _read_pid(n.pidfile)) is not None and _alive(p) for n in nodes):
        time.sleep(0.3)
    for node in nodes:
        for pid in _node_pids(node):
            _kill(pid, signal.SIGKILL)
    for pid in _pids_mentioning(str(root / "registry.yml")):
        _kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    _unmount_under(root)
    for node in nodes:
        _remove_cgroups(node.name)
        run("ip", "netns", "delete", node.name, check=False)
        run("ip", "link", "delete", node.veth, check=False)
    run("ip", "link", "delete", BRIDGE, check=False)
    for rule in _iptables_rules():
        run("iptables", "-D", "DOCKER-USER", *rule, check=False)
    shutil.rmtree(root, ignore_errors=True)


def problem() -> str | None:
    """Why a cluster cannot be made on this machine (None: it can)."""
    if os.geteuid() != 0:
        return "the several-node swarm needs root (network namespaces, a bridge, dockerd)"
    for tool in ("dockerd", "nsenter", "unshare", "ip", "iptables", "docker-registry", "docker"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def build_node_base(base: str) -> None:
    """The nodes' Debian (see the module docstring), built on the main engine."""
    with tempfile.TemporaryDirectory() as work:
        from cri_tasks.dockerfile import erlang_suites, read_file, run_script, without_comments
        from cri_tasks.runtimes import GLEAM_MIN_OTP

        erlang = run_script(
            without_comments(read_file("erlang.sh")), "cri-erlang", max(GLEAM_MIN_OTP.values()), *erlang_suites()
        )
        (Path(work) / "Dockerfile").write_text(NODE_BASE_DOCKERFILE.format(base=base, erlang=erlang))
        run(
            "docker",
            "buildx",
            "build",
            "--load",
            "--pull=false",
            "-t",
            NODE_BASE,
            "--label",
            f"{COMMENT}=1",
            work,
            timeout=900,
        )


def create(root: Path, count: int = 3, *, images: Sequence[str] = ()) -> Cluster:
    """Bridge, namespaces, veths, registry, one dockerd per node, ``images`` loaded into every
    node, a swarm (node 1 the manager, the others workers), checked to carry overlay traffic."""
    clean(root, count)
    root.mkdir(parents=True)
    cluster = Cluster(root)
    mark = time.monotonic()

    def step(name: str) -> None:
        nonlocal mark
        cluster.timings[name] = round(time.monotonic() - mark, 1)
        mark = time.monotonic()

    try:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        # The main engine drops forwarded traffic by default: let the nodes talk to each other.
        run(
            "iptables",
            "-I",
            "DOCKER-USER",
            "-i",
            BRIDGE,
            "-o",
            BRIDGE,
            "-m",
            "comment",
            "--comment",
            COMMENT,
            "-j",
            "ACCEPT",
        )
        for i in range(1, count + 1):
            node = Node(f"{PREFIX}-n{i}", i, root)
            cluster.nodes.append(node)
            run("ip", "netns", "add", node.name)
            run("ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.name)
            run("ip", "link", "set", node.veth, "master", BRIDGE, "up")
            for cmd in (
                ["ip", "addr", "add", f"{node.addr}/24", "dev", "eth0"],
                ["ip", "link", "set", "eth0", "up"],
                ["ip", "link", "set", "lo", "up"],
            ):  # no default route: nothing beyond the bridge
                run("ip", "netns", "exec", node.name, *cmd)
        config = root / "registry.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'registry'}\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: {cluster.registry}\n"
        )
        with open(root / "registry.log", "ab") as log:
            cluster.registry_proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        for node in cluster.nodes:
            cluster.start_dockerd(node)
        _wait_registry(cluster)
        step("network, registry, daemons")
        if images:
            archive = root / "images.tar"
            run("docker", "save", "-o", str(archive), *images, timeout=600)
            loads = [
                subprocess.Popen(
                    ["docker", "-H", node.host, "load", "-q", "-i", str(archive)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for node in cluster.nodes
            ]
            for node, load in zip(cluster.nodes, loads, strict=True):
                _, err = load.communicate(timeout=600)
                if load.returncode != 0:
                    raise ClusterError(f"docker load into {node.name} failed: {err.decode(errors='replace')[-500:]}")
            archive.unlink()
            step("images loaded")
        m = cluster.manager
        m.docker("swarm", "init", "--advertise-addr", m.addr, "--default-addr-pool", ADDR_POOL)
        token = m.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        for node in cluster.nodes[1:]:
            node.docker("swarm", "join", "--advertise-addr", node.addr, "--token", token, f"{m.addr}:2377")
        wait_nodes_ready(cluster, count)
        step("swarm")
        if images:
            check_overlay(cluster, images[0])
            step("overlay check")
    except BaseException:
        cluster.close()
        raise
    return cluster


def _wait_registry(cluster: Cluster) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://{cluster.registry}/v2/", timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise ClusterError(
                f"the registry on {cluster.registry} did not answer: "
                + (cluster.root / "registry.log").read_text(errors="replace")[-800:]
            )
        time.sleep(0.2)


def nodes(cluster: Cluster) -> list[dict[str, str]]:
    """``docker node ls`` on the manager: hostname, state (ready/down), availability, id."""
    out = cluster.manager.docker("node", "ls", "--format", "{{json .}}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def node_ids(cluster: Cluster) -> dict[str, str]:
    """Node id -> our node name (the hostname of a namespaced dockerd is the machine's, so the
    address tells them apart)."""
    ids = cluster.manager.docker("node", "ls", "-q").stdout.split()
    out = {}
    for i in ids:
        addr = cluster.manager.docker("node", "inspect", "--format", "{{.Status.Addr}}", i).stdout.strip()
        for node in cluster.nodes:
            if node.addr == addr:
                out[i] = node.name
    return out


def wait_nodes_ready(cluster: Cluster, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listed = nodes(cluster)
        if sum(1 for n in listed if n.get("Status") == "Ready") >= count:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{count} nodes not ready: {listed}")
        time.sleep(0.5)


def check_overlay(cluster: Cluster, image: str) -> None:
    """A container on node 2 reaches a container on node 3 over an attachable overlay network."""
    m, a, b = cluster.nodes[0], cluster.nodes[1], cluster.nodes[-1]
    net = f"{PREFIX}-check"
    m.docker("network", "create", "-d", "overlay", "--attachable", net)
    try:
        a.docker(
            "run",
            "-d",
            "--name",
            f"{PREFIX}-listen",
            "--network",
            net,
            image,
            "sh",
            "-c",
            "while true; do echo overlay-ok | nc -l -p 7000 -q 1 || nc -l 7000; done",
        )
        deadline = time.monotonic() + 30
        while True:
            got = b.docker(
                "run",
                "--rm",
                "--network",
                net,
                image,
                "sh",
                "-c",
                f"nc -w 3 {PREFIX}-listen 7000 </dev/null",
                check=False,
                timeout=60,
            )
            if "overlay-ok" in got.stdout:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"no overlay traffic between {a.name} and {b.name}: {got.stdout} {got.stderr}")
            time.sleep(1)
    finally:
        a.docker("rm", "-f", f"{PREFIX}-listen", check=False)
        for _ in range(20):
            if m.docker("network", "rm", net, check=False).returncode == 0:
                break
            time.sleep(0.5)


def pulled(node: Node, repository: str) -> list[str]:
    """The ``repository@digest`` references a node's engine holds for ``repository``."""
    out = node.docker(
        "image", "ls", "--digests", "--format", "{{.Repository}}@{{.Digest}}", "--filter", f"reference={repository}"
    ).stdout.split()
    return [r for r in out if not r.endswith("@<none>")]


def service_tasks(cluster: Cluster, service: str) -> list[dict[str, object]]:
    out = cluster.manager.docker("service", "ps", "--no-trunc", "--format", "{{json .}}", service).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def inspect_tasks(cluster: Cluster, service: str) -> list[dict[str, object]]:
    ids = cluster.manager.docker("service", "ps", "-q", "--no-trunc", service).stdout.split()
    if not ids:
        return []
    return json.loads(cluster.manager.docker("inspect", *ids).stdout)  # type: ignore[no-any-return]


def running_on(cluster: Cluster, service: str) -> dict[str, int]:
    """Node name -> running tasks of ``service`` the manager reports (desired and actual)."""
    names = node_ids(cluster)
    out: dict[str, int] = {}
    for t in inspect_tasks(cluster, service):
        status = t.get("Status") or {}
        if t.get("DesiredState") == "running" and isinstance(status, dict) and status.get("State") == "running":
            name = names.get(str(t.get("NodeID")), str(t.get("NodeID")))
            out[name] = out.get(name, 0) + 1
    return out
