"""The swarm target on three real nodes (issue 17): a Swarm of three ``dockerd`` in network
namespaces of their own (``tests/swarm_cluster.py``), the example with 3 replicas behind the
front proxy, the registry on the cluster's bridge. cri-tasks talks to the manager through
``DOCKER_HOST``, as a user with a remote manager does; the main engine's swarm state is never
touched.

The tests build on each other in file order (one cluster, one project: version 1, then 2, a
failing 3, a node that dies, execOnce, placement), because creating the cluster and the first
deploy are what costs. Deselect them with ``-m "not swarm_nodes"`` for a quick local run.
Image and service names are read from the deploy's own output and ``invoke status --json``.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import swarm_cluster as sc
import yaml
from conftest import BASE_IMAGE, EXAMPLE, IN_CI
from helpers import Client, edit, get, invoke

#: the front proxy's host port on every node (each node is its own network namespace)
PORT = 18080
#: how long Swarm may take to notice a dead node and start its tasks elsewhere (docs/swarm.md)
RESCHEDULE_BUDGET = 60.0


@pytest.fixture(scope="module")
def cluster(engine: None) -> Iterator[sc.Cluster]:
    problem = sc.problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI needs the several-node swarm: {problem}")
        pytest.skip(problem)
    # A CI job that is cancelled gets SIGTERM: tear the cluster down as on Ctrl-C (a SIGKILLed
    # run leaves it to the next run's sc.create, which removes leftovers first).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        started = time.monotonic()
        sc.build_node_base(BASE_IMAGE)
        cluster = sc.create(sc.default_root(), 3, images=[sc.NODE_BASE])
        print(f"several-node swarm ready in {time.monotonic() - started:.0f} s: {cluster.timings}")
        try:
            yield cluster
        finally:
            started = time.monotonic()
            cluster.close()
            print(f"several-node swarm removed in {time.monotonic() - started:.0f} s")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="module")
def hello(cluster: sc.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bundled example, set up for the three-node swarm (3 replicas, front proxy on a fixed
    port, the manager's address as publish address)."""
    tmp = tmp_path_factory.mktemp("nodes")
    proj = tmp / "hello"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns(".cri", "build"))
    (proj / "project.env").write_text("")
    write_settings(
        proj,
        {
            "images": {"ubuntu": sc.NODE_BASE, "alpine": "alpine:3.20"},
            "gleam": {"source": "none"},
            "repository": f"cri-test-{uuid.uuid4().hex[:10]}",
            "cache_dir": str(tmp / "cri-cache"),
            "env_file": "project.env",
            "target": "swarm",
            "registry": cluster.registry,
            "stop_timeout": 3,
            "replicas": {"default": 3},
            "publish_address": cluster.manager.addr,
            "publish": {"app": {"8000": PORT}},  # a string key: invoke cannot load int keys
            "swarm": {"ports": "proxy", "monitor": "2s", "parallelism": 1},
        },
    )
    # Readiness checked every second (the example says 5 s): each task waits for it.
    edit(proj / "zerops.yml", "          path: /\n", "          path: /\n        retryPeriod: 1\n")
    yield proj


def write_settings(proj: Path, cri: dict[str, Any]) -> None:
    (proj / "invoke.yaml").write_text(yaml.safe_dump({"cri": cri}))


def settings_of(proj: Path) -> dict[str, Any]:
    return yaml.safe_load((proj / "invoke.yaml").read_text())["cri"]  # type: ignore[no-any-return]


def run_invoke(cluster: sc.Cluster, proj: Path, *args: str) -> Any:
    return invoke(proj, *args, env=cluster.manager.env())


def deploy(cluster: sc.Cluster, proj: Path) -> tuple[Any, dict[str, Any]]:
    proc = run_invoke(cluster, proj, "deploy", "--json")
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc, doc


def status(cluster: sc.Cluster, proj: Path) -> dict[str, Any]:
    proc = run_invoke(cluster, proj, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["setups"]
    return entry  # type: ignore[no-any-return]


def url_of(node: sc.Node) -> str:
    return f"http://{node.addr}:{PORT}/"


def answers(node: sc.Node) -> str:
    try:
        return get(url_of(node))
    except (OSError, RuntimeError) as exc:
        return f"no answer: {exc!r}"


def registry_digest(cluster: sc.Cluster, repo: str, tag: str) -> str | None:
    request = urllib.request.Request(
        f"http://{cluster.registry}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError:
        return None


def wait_until(what: str, check: Any, timeout: float, step: float = 0.5) -> float:
    """Poll ``check()`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)
    return time.monotonic() - start


# ----------------------------------------------------------------------------------------------


@pytest.mark.engine
@pytest.mark.swarm_nodes
@pytest.mark.slow
def test_a_deploy_spreads_tasks_each_node_pulls_by_digest_every_proxy_answers(cluster: sc.Cluster, hello: Path) -> None:
    started = time.monotonic()
    proc, doc = deploy(cluster, hello)
    assert proc.returncode == 0, proc.stderr
    print(f"first deploy on three nodes: {time.monotonic() - started:.0f} s")
    (first,) = doc["setups"]
    assert first["status"] == "active" and first["version"] == 1 and len(first["containers"]) == 3
    assert first["urls"] == [url_of(cluster.manager)]

    entry = status(cluster, hello)
    image = entry["service"]["image"]
    ref, digest = image.split("@")
    repo, tag = ref[len(cluster.registry) + 1 :].rsplit(":", 1)
    assert ref.startswith(cluster.registry + "/") and tag == "v1"
    assert digest == registry_digest(cluster, repo, tag)
    placed = {node: len(tasks) for node, tasks in entry["nodes"].items()}
    assert sum(placed.values()) == 3 and len(placed) > 1, placed
    assert set(placed) <= {n.name for n in cluster.nodes}
    assert entry["node_states"] == {n.name: "ready" for n in cluster.nodes}
    # Every node that runs a task pulled the app from the registry, by that digest.
    for name in placed:
        assert f"{cluster.registry}/{repo}@{digest}" in sc.pulled(cluster.node(name), f"{cluster.registry}/{repo}"), (
            name
        )
    # The front proxy runs on every node, pulled from the registry by digest too.
    proxy_image = entry["proxy"]["image"]
    assert proxy_image.startswith(cluster.registry + "/") and "@sha256:" in proxy_image
    proxy_ref, proxy_digest = proxy_image.split("@")
    for node in cluster.nodes:
        assert f"{proxy_ref.rsplit(':', 1)[0]}@{proxy_digest}" in sc.pulled(node, proxy_ref.rsplit(":", 1)[0]), (
            node.name
        )
        assert answers(node).startswith("Hello from the BEAM, version 1"), node.name
    # Requests through one node's proxy reach tasks on the other nodes (hostnames are per slot).
    assert sc.running_on(cluster, entry["proxy"]["name"]) == {n.name: 1 for n in cluster.nodes}


@pytest.mark.engine
@pytest.mark.swarm_nodes
@pytest.mark.slow
def test_a_redeploy_under_load_on_two_nodes_fails_no_request(cluster: sc.Cluster, hello: Path) -> None:
    edit(hello / "src" / "hello.erl", "version 1", "version 2")
    started = time.monotonic()
    with Client(url_of(cluster.nodes[0])) as one, Client(url_of(cluster.nodes[1])) as two:
        proc, doc = deploy(cluster, hello)
    print(f"redeploy under load: {time.monotonic() - started:.0f} s, {len(one.bodies)} + {len(two.bodies)} requests")
    assert proc.returncode == 0, proc.stderr
    (second,) = doc["setups"]
    assert second["version"] == 2
    for client in (one, two):
        assert client.failures == []
        assert len(client.bodies) > 50
        assert client.bodies[0].startswith("Hello from the BEAM, version 1")
        assert client.bodies[-1].startswith("Hello from the BEAM, version 2")
    # The deploy's own measure (through the manager's proxy) agrees.
    assert second["switch"]["failed"] == 0 and second["switch"]["requests"] > 0
    assert "swarm: completed" in proc.stderr
    for node in cluster.nodes:
        assert answers(node).startswith("Hello from the BEAM, version 2"), node.name


@pytest.mark.engine
@pytest.mark.swarm_nodes
@pytest.mark.slow
def test_a_failing_version_is_rolled_back_and_the_old_one_serves_on_every_node(
    cluster: sc.Cluster, hello: Path
) -> None:
    saved = (hello / "zerops.yml").read_text()
    text = saved[: saved.index("    deploy:\n      readinessCheck:")]
    (hello / "zerops.yml").write_text(text)
    edit(
        hello / "zerops.yml",
        "      start: ./entrypoint.sh run\n",
        "      start: ./entrypoint.sh run\n      healthCheck:\n        exec:\n          command: exit 1\n"
        "        execPeriod: 1\n        failureTimeout: 2\n",
    )
    edit(hello / "src" / "hello.erl", "version 2", "version 3")
    try:
        with Client(url_of(cluster.nodes[1])) as two, Client(url_of(cluster.nodes[2])) as three:
            proc, _ = deploy(cluster, hello)
    finally:
        (hello / "zerops.yml").write_text(saved)
        edit(hello / "src" / "hello.erl", "version 3", "version 2")
    assert proc.returncode == 1
    assert "[app] DEPLOY_FAILED: Swarm rolled the update of" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    for client in (two, three):
        assert client.failures == []
        assert client.bodies and all("version 2" in b for b in client.bodies)
    entry = status(cluster, hello)
    assert entry["active_version"] == 2 and entry["service"]["update"]["state"] == "rollback_completed"
    assert [t["version"] for t in entry["containers"]] == ["2", "2", "2"]
    for node in cluster.nodes:
        assert answers(node).startswith("Hello from the BEAM, version 2"), node.name


@pytest.mark.engine
@pytest.mark.swarm_nodes
@pytest.mark.slow
def test_a_node_dies_swarm_reschedules_and_nothing_is_duplicated_when_it_returns(
    cluster: sc.Cluster, hello: Path
) -> None:
    entry = status(cluster, hello)
    service = entry["service"]["name"]
    placed = sc.running_on(cluster, service)
    victim = next(n for n in reversed(cluster.nodes[1:]) if placed.get(n.name))
    survivors = [n for n in cluster.nodes if n is not victim]
    with Client(url_of(cluster.manager)) as client:
        time.sleep(1)
        killed = time.monotonic()
        cluster.kill_node(victim)
        took = wait_until(
            "the dead node's tasks running elsewhere",
            lambda: sum(v for k, v in sc.running_on(cluster, service).items() if k != victim.name) == 3,
            RESCHEDULE_BUDGET,
        )
        wait_until("the node shown down", lambda: status(cluster, hello)["node_states"][victim.name] == "down", 30)
        time.sleep(2)  # requests after the rescheduling
    print(
        f"node {victim.name} killed: tasks running elsewhere after {took:.1f} s (node down after "
        f"{time.monotonic() - killed:.1f} s at the latest); {len(client.failures)} of "
        f"{len(client.failures) + len(client.bodies)} requests failed through {cluster.manager.name}'s proxy: "
        f"{sorted(set(client.failures))[:3]}"
    )
    assert client.bodies and client.bodies[-1].startswith("Hello from the BEAM, version 2")
    # The front proxy retries another task when a connection fails: a dead task costs no request.
    assert client.failures == []

    entry = status(cluster, hello)
    assert entry["node_states"][victim.name] == "down"
    assert {n.name for n in survivors} >= set(entry["nodes"]) and sum(len(t) for t in entry["nodes"].values()) == 3
    assert all(t["status"] == "running" for t in entry["containers"])
    text = run_invoke(cluster, hello, "status").stdout
    assert f"swarm nodes not ready: {victim.name}" in text

    # It comes back: its old tasks are not started again, the service still has exactly 3.
    cluster.start_dockerd(victim)
    wait_until("the node ready again", lambda: status(cluster, hello)["node_states"][victim.name] == "ready", 60)
    wait_until("its proxy answers again", lambda: answers(victim).startswith("Hello from the BEAM, version 2"), 60)
    time.sleep(5)
    assert sum(sc.running_on(cluster, service).values()) == 3
    assert victim.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").stdout.split() == []
    entry = status(cluster, hello)
    assert len(entry["containers"]) == 3 and all(t["status"] == "running" for t in entry["containers"])


@pytest.mark.engine
@pytest.mark.swarm_nodes
@pytest.mark.slow
def test_exec_once_runs_once_per_node_and_the_deploy_says_so(cluster: sc.Cluster, hello: Path) -> None:
    saved = (hello / "zerops.yml").read_text()
    edit(
        hello / "zerops.yml",
        "      start: ./entrypoint.sh run\n",
        "      initCommands:\n        - zsc execOnce migrate-${appVersionId} -- echo MIGRATION-RAN\n"
        "      start: ./entrypoint.sh run\n",
    )
    try:
        proc, doc = deploy(cluster, hello)
    finally:
        (hello / "zerops.yml").write_text(saved)
    assert proc.returncode == 0, proc.stderr
    assert "zsc execOnce runs once per node here, not once per cluster" in proc.stderr
    entry = status(cluster, hello)
    nodes_with_tasks = {t["node"] for t in entry["containers"]}
    assert len(nodes_with_tasks) > 1
    logs = run_invoke(cluster, hello, "logs", "--setup", "app").stdout
    ran = [line for line in logs.splitlines() if line.rstrip().endswith("MIGRATION-RAN")]
    # What the docs say: one run per node that started a task of this version, not one per cluster.
    assert len(ran) == len(nodes_with_tasks), logs


@pytest.mark.engine
@pytest.mark.swarm_nodes
@pytest.mark.slow
def test_placement_constraints_put_tasks_and_proxies_where_node_labels_say(cluster: sc.Cluster, hello: Path) -> None:
    ids = {name: i for i, name in sc.node_ids(cluster).items()}
    web, edge = cluster.nodes[1], cluster.nodes[2]
    cluster.manager.docker("node", "update", "--label-add", "tier=web", ids[web.name])
    cluster.manager.docker("node", "update", "--label-add", "edge=true", ids[edge.name])
    settings = settings_of(hello)
    settings["swarm"] = {
        **settings["swarm"],
        "constraints": {"default": ["node.labels.tier == web"]},
        "proxy_constraints": ["node.labels.edge == true"],
    }
    settings["publish_address"] = edge.addr  # the address users reach: an edge node
    write_settings(hello, settings)
    proc, doc = deploy(cluster, hello)
    assert proc.returncode == 0, proc.stderr
    assert "the front proxy changes (ports, configuration or placement)" in proc.stderr
    entry = status(cluster, hello)
    assert sc.running_on(cluster, entry["service"]["name"]) == {web.name: 3}
    assert sc.running_on(cluster, entry["proxy"]["name"]) == {edge.name: 1}
    assert doc["setups"][0]["urls"] == [url_of(edge)]
    # The edge node's proxy reaches the tasks on the web node over the overlay network.
    assert answers(edge).startswith("Hello from the BEAM, version ")
    assert answers(cluster.manager).startswith("no answer")


# ----------------------------------------------------------------------------------------------
# without an engine: what the several-node fixes decide


EXEC_ONCE = """
zerops:
  - setup: app
    run:
      base: gleam@1.5
      initCommands:
        - zsc execOnce migrate-${appVersionId} -- ./migrate
      start: ./serve
"""


@pytest.mark.parametrize("ready, replicas, warned", [(3, 3, True), (1, 3, False), (3, 1, False)])
def test_exec_once_warns_when_it_would_run_on_several_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ready: int, replicas: int, warned: bool
) -> None:
    from cri_tasks import api, engine
    from cri_tasks.settings import resolve
    from cri_tasks.targets.swarm import SwarmTarget

    (tmp_path / "zerops.yml").write_text(EXEC_ONCE.lstrip())
    settings = resolve({"target": "swarm", "registry": "reg.example", "replicas": {"app": replicas}})
    project = api.load(tmp_path / "zerops.yml", settings)
    nodes = [{"ID": f"n{i}", "Hostname": f"node{i}", "Status": "Ready", "Availability": "Active"} for i in range(ready)]
    nodes.append({"ID": "d", "Hostname": "dead", "Status": "Down", "Availability": "Active"})
    monkeypatch.setattr(engine, "swarm_nodes", lambda: nodes)
    lines: list[str] = []
    SwarmTarget(project, settings, lines.append)._warn_exec_once(project.setups[0])
    assert any("zsc execOnce runs once per node here, not once per cluster" in line for line in lines) is warned
    if warned:
        assert f"({ready} nodes, {replicas} replicas)" in lines[0]


def test_a_free_port_on_another_machines_address_asks_for_cri_publish() -> None:
    from cri_tasks.errors import ConfigError
    from cri_tasks.targets.swarm import _free_port

    with pytest.raises(ConfigError) as info:
        _free_port("203.0.113.7", "app", 8000)  # TEST-NET-3: never an address of this machine
    text = str(info.value)
    assert "cri.publish_address 203.0.113.7" in text and 'publish: {app: {"8000": 8080}}' in text
