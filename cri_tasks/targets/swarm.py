"""The swarm target: app versions as Docker Swarm services, images pulled from a registry.

A deploy pushes the app image to ``cri.registry`` and pins it by digest, renders one compose
file per setup (``templates/swarm-stack.yml.j2``) and runs ``docker stack deploy`` on the stack
``cri.swarm.stack`` (default ``cri-<project id>``). Swarm does the rolling update: one task at a
time (``swarm.parallelism``), ``start-first`` (``stop-first`` with ``temporaryShutdown: true``),
gated by the container health check that carries ``readinessCheck`` and ``healthCheck``, watched
for ``swarm.monitor`` and rolled back by Swarm itself when a new task fails. This module then
waits for the update to converge and reads how it ended (``docker stack deploy`` exits 0 even
when Swarm rolls back, docker/cli#6752).

Ports (``swarm.ports``):

- ``mesh``: the app service publishes its ports through Swarm's routing mesh (ingress network,
  VIP load balancing: needs IPVS in the kernel of every node);
- ``proxy``: the app service has no published port (``endpoint_mode: dnsrr``); a front HAProxy,
  one task per node (``mode: global``), publishes the ports in host mode and sends traffic to
  ``tasks.<service>`` through Docker's DNS (no IPVS needed, no reload when tasks change);
- ``auto``: ``mesh`` when a one-task probe service answers through the ingress network, else
  ``proxy``; the answer is kept per swarm in the project's records.

Environment variables reach tasks through the compose ``env_file``: a 0600 file in the
owner-only cache folder, deleted as soon as ``docker stack deploy`` returns (the values then live
in the service spec, as they live in a container's config on the local target).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import engine, fingerprint, records
from ..dockerfile import render
from ..engine import LABEL
from ..errors import ConfigError, CriError, EngineError, Problem
from ..model import Port, Project, Setup
from ..paths import cache_folder, component, writing
from ..probe import Probe, SwitchReport
from ..results import Reporter
from ..settings import SWARM_NEEDS_REGISTRY, Settings
from ..workspace import Workspace, opened, project_id
from . import proxy
from .base import Activation, Version, check_command, deploy_error, env_file_prefix

#: server slots of the front proxy per port (tasks beyond this are not sent traffic)
MIN_SLOTS = 32
_READY_MARKER = "/tmp/.cri-ready"
_FAILED = ("failed", "rejected", "complete", "orphaned", "remove")


def _q(value: Any) -> str:
    """A compose scalar: JSON (a YAML subset), with ``$`` doubled against interpolation."""
    if isinstance(value, str):
        return json.dumps(value.replace("$", "$$"))
    if isinstance(value, list):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    return json.dumps(value)


def _ms(seconds: float) -> str:
    return f"{max(0, int(round(seconds * 1000)))}ms"


@dataclass(frozen=True)
class _Proxy:
    service: str
    spec: dict[str, Any]  # template context
    ports: dict[int, int]  # container port -> published port
    changes: bool  # the proxy service is created or restarted by this deploy


class SwarmTarget:
    """Deploys setups as services of one Swarm stack; see the module docstring."""

    #: a deploy of several setups either lands for all of them or for none (deploy_phase.deploy)
    all_or_nothing: ClassVar[bool] = True

    def __init__(
        self, project: Project, settings: Settings, report: Reporter, workspace: Workspace | None = None
    ) -> None:
        self.project, self.settings, self.report = project, settings, report
        self.pid = project_id(project)
        self.workspace = workspace  # the call's records; without one, each use opens its own
        self.cache_dir = workspace.cache_dir if workspace is not None else settings.cache_path(project.root)
        # cri.swarm was checked with the other settings (settings.resolve)
        swarm = settings.swarm
        self.stack = swarm.stack or f"cri-{self.pid}"
        self.ports_mode = swarm.ports
        self.parallelism = swarm.parallelism
        self.monitor = swarm.monitor
        self.wait = swarm.wait
        self.timeout = swarm.timeout
        self.constraints = swarm.constraints
        self.proxy_constraints = list(swarm.proxy_constraints)

    # -- names ----------------------------------------------------------------------------------

    def _labels(self, setup: Setup, **extra: str) -> dict[str, str]:
        return {
            f"{LABEL}.project": self.pid,
            f"{LABEL}.setup": setup.name,
            **{f"{LABEL}.{k}": v for k, v in extra.items()},
        }

    def _short(self, setup: Setup) -> str:
        return re.sub(r"[^a-z0-9-]", "-", setup.name.lower())

    def service_name(self, setup: Setup) -> str:
        """The Swarm service that runs the setup's app (``<stack>_<setup>``)."""
        return f"{self.stack}_{self._short(setup)}"

    def proxy_name(self, setup: Setup) -> str:
        return f"{self.stack}_{self._short(setup)}-proxy"

    def _constraints_for(self, setup: Setup) -> list[str]:
        c = self.constraints
        if isinstance(c, Mapping):
            c = c.get(setup.name, c.get("default", []))
        return [str(x) for x in (c or [])]

    # -- preconditions --------------------------------------------------------------------------

    def _registry(self) -> str:
        if not self.settings.registry:
            raise ConfigError(SWARM_NEEDS_REGISTRY)  # refused before the build too (preflight)
        return self.settings.registry

    def _manager(self) -> dict[str, Any]:
        info = engine.swarm_state()
        state = str(info.get("LocalNodeState") or "inactive")
        if state != "active":
            raise EngineError(
                f"the swarm target needs this Docker engine in a swarm (its state: {state}): "
                "run `docker swarm init` or point DOCKER_HOST at a manager"
            )
        if not info.get("ControlAvailable"):
            raise EngineError(
                "the swarm target needs a Swarm manager: this engine is a worker; point DOCKER_HOST at a manager"
            )
        return info

    # -- activation -----------------------------------------------------------------------------

    def activate(self, setup: Setup, version: Version, env: dict[str, str], *, previous: Version | None) -> Activation:
        run = setup.run
        if run.start is None and not run.start_commands:
            raise ConfigError(
                [
                    Problem(
                        "run.start or run.startCommands is needed to deploy",
                        path=f"zerops[{setup.index}].run",
                        location=run.location,
                    )
                ]
            )
        registry = self._registry()
        swarm = self._manager()
        for key, value in env.items():
            if "\n" in value:  # one line per variable in env files
                raise ConfigError(f"[{setup.name}] env variable {key}: values with newlines are not supported")
        service = self.service_name(setup)
        before = engine.service_state(service)
        mode = self._ports_mode(setup, swarm)
        self._warn_exec_once(setup)
        if before is not None:
            have = ((before.get("Spec") or {}).get("EndpointSpec") or {}).get("Mode") or "vip"
            want = "vip" if mode == "mesh" else "dnsrr"
            if have != want:
                raise ConfigError(
                    f"[{setup.name}] the service {service} runs with endpoint mode {have}, swarm.ports "
                    f"{self.ports_mode} needs {want}: run `invoke stop --setup {setup.name}` first (an outage)"
                )
        self.report(f"[{setup.name}] pushing {registry}/{version.image}")
        # the id the version was built as (deploy_phase.checked_image), under the version's
        # project-scoped name in the registry: <registry>/<repository>/<project id>/<setup>:v<N>
        image = engine.push_image(version.image_id, f"{registry}/{version.image}")
        tcp = [p for p in run.ports if p.protocol == "tcp"]
        front = self._proxy(setup, service, tcp) if mode == "proxy" and tcp else None
        app_ports: dict[int, int] = {}
        if mode == "mesh":
            app_ports = self._mesh_ports(setup, before)
        replicas = self.settings.replicas_for(setup.name)
        activation = secrets.token_hex(3)
        order = "stop-first" if setup.deploy.temporary_shutdown else "start-first"
        health = self._health(setup)

        stack_file = component(f"{self._short(setup)}.yml", "stack file")
        compose_path = cache_folder(self.cache_dir, "swarm") / stack_file
        urls = self._urls(setup, front.ports if front else app_ports)
        http_port = next((p for p in tcp if p.http_support), tcp[0] if tcp else None)
        published = (front.ports if front else app_ports).get(http_port.port) if http_port else None
        is_http = bool(http_port and http_port.http_support)
        if mode == "proxy" and any(p.protocol != "tcp" for p in run.ports):
            self.report(f"[{setup.name}] swarm.ports proxy: udp ports are not published (the front proxy is TCP only)")
        if front is not None and front.changes and before is not None:
            self.report(
                f"[{setup.name}] the front proxy changes (ports, configuration or placement): a short outage while it restarts"
            )
        probe: Probe | None = None
        if before is not None and published is not None and _answers(self.settings.publish_address, published, is_http):
            probe = Probe(self.settings.publish_address, published, http=is_http).__enter__()
            time.sleep(0.2)  # a few requests against the old version first
        switch: SwitchReport | None = None
        updated = False  # Swarm finished the update of the app service
        try:
            self.report(
                f"[{setup.name}] docker stack deploy {self.stack}: {service} version {version.number}, "
                f"{replicas} replica(s), {order}, ports: {mode}"
            )
            env_dir = cache_folder(self.cache_dir, "tmp")
            fd, env_path = tempfile.mkstemp(
                dir=env_dir, prefix=env_file_prefix(setup.name)
            )  # 0600, in an owner-only folder
            try:
                with writing("the stack's env and compose files", env_dir, partial=[compose_path]):
                    with os.fdopen(fd, "w", encoding="utf-8") as f:
                        f.writelines(f"{key}={value}\n" for key, value in env.items())
                    compose_path.write_text(
                        self._compose(
                            setup,
                            version,
                            image,
                            Path(env_path),
                            activation,
                            mode,
                            app_ports,
                            replicas,
                            order,
                            health,
                            front,
                        )
                    )
                engine.stack_deploy(
                    self.stack, compose_path, on_line=lambda line: self.report(f"[{setup.name}] {line}")
                )
            finally:
                os.unlink(env_path)  # the values live in the service spec only from here on
            if not self.wait:
                self.report(
                    f"[{setup.name}] not waiting for Swarm to converge (swarm.wait: false): see `invoke status`"
                )
            else:
                self._converge(setup, service, before, version, replicas, health)
                updated = True
                if front is not None and front.changes:
                    self._wait_running(setup, front.service, deadline=time.monotonic() + 120)
                if published is not None:
                    self._wait_answers(setup, published, is_http)
        except BaseException as exc:
            if probe is not None:
                probe.stop()
            if before is None:
                # Nothing ran before: the failed version goes (the proxy too when it came with it).
                self._discard(
                    setup, [service] + ([front.service] if front is not None and front.changes else []), activation
                )
            elif updated or isinstance(exc, KeyboardInterrupt):
                # The new version runs but the deploy did not finish: back to the previous spec.
                self.report(
                    f"[{setup.name}] {'interrupted' if isinstance(exc, KeyboardInterrupt) else 'failed'}: "
                    f"asking Swarm to roll {service} back"
                )
                try:
                    engine.rollback_service(service)
                except CriError:
                    pass
            raise
        if probe is not None:
            time.sleep(0.2)
            switch = probe.stop()
            self.report(f"[{setup.name}] switch: {switch}")
        self._remember(setup, version, image)
        self._tidy(setup, activation, front)
        tasks = [self._task_name(t) for t in engine.service_tasks(service) if self._current(t)]
        return Activation(containers=sorted(tasks), urls=urls, switch=switch)

    def _warn_exec_once(self, setup: Setup) -> None:
        """``zsc execOnce`` locks with a volume, and Swarm volumes are per node: on several nodes
        the command runs once per node that starts a task (docs/swarm.md, "Several nodes")."""
        run = setup.run
        texts = [c.text for c in run.init_commands] + ([run.start.text] if run.start else [])
        for sc in run.start_commands:
            texts += [sc.command.text] + [c.text for c in sc.init_commands]
        if not any("zsc execOnce" in t for t in texts):
            return
        usable = [n for n in engine.swarm_nodes() if n.get("Status") == "Ready" and n.get("Availability") == "Active"]
        replicas = self.settings.replicas_for(setup.name)
        if len(usable) > 1 and replicas > 1:
            self.report(
                f"[{setup.name}] warning: zsc execOnce runs once per node here, not once per cluster: its lock is "
                f"a volume and volumes are per node ({len(usable)} nodes, {replicas} replicas); a migration "
                "needs a lock of its own (e.g. a database advisory lock) or one replica"
            )

    def _discard(self, setup: Setup, services: list[str], activation: str) -> None:
        """Remove services this deploy created, their volume, and the stack's network when no
        service is left in it."""
        try:
            engine.remove_services(services)
            for name in services:
                engine.wait_containers_gone(
                    {"com.docker.swarm.service.name": name}, timeout=self.settings.stop_timeout + 30
                )
            if not engine.list_services({"com.docker.stack.namespace": self.stack}):
                engine.remove_stack(self.stack)
        except CriError as exc:
            self.report(f"[{setup.name}] could not remove the failed service completely: {exc}")

    # -- convergence ----------------------------------------------------------------------------

    def _budget(self, setup: Setup, replicas: int, health: dict[str, Any] | None) -> float:
        if self.timeout is not None:
            return self.timeout
        per_task = 60.0 + self.monitor + self.settings.stop_timeout
        if health:
            per_task += health["_start"] + health["_interval"] * (health["_retries"] + 1)
        batches = math.ceil(replicas / self.parallelism) if self.parallelism else 1
        return per_task * batches + 60.0

    def _converge(
        self,
        setup: Setup,
        service: str,
        before: dict[str, Any] | None,
        version: Version,
        replicas: int,
        health: dict[str, Any] | None,
    ) -> None:
        budget = self._budget(setup, replicas, health)
        deadline = time.monotonic() + budget
        if before is None:
            self.report(
                f"[{setup.name}] waiting for {replicas} task(s) of version {version.number} to be running and healthy"
            )
            self._wait_created(setup, service, version, replicas, deadline, budget)
            return
        started_before = (before.get("UpdateStatus") or {}).get("StartedAt")
        index_before = (before.get("Version") or {}).get("Index")
        self.report(f"[{setup.name}] waiting for Swarm's rolling update (monitor {self.monitor:g} s per task)")
        last, reason = "", ""
        while True:
            st = engine.service_state(service)
            if st is None:
                raise deploy_error(setup, f"the service {service} disappeared during the update", "")
            us = st.get("UpdateStatus") or {}
            state = us.get("State") if us.get("StartedAt") and us.get("StartedAt") != started_before else None
            if state in ("rollback_started", "paused") and us.get("Message"):
                reason = str(us["Message"])  # why Swarm stopped the update (the task that failed)
            if state is None and (st.get("Version") or {}).get("Index") == index_before:
                # The spec did not change: no update. Done when the tasks run.
                self._wait_created(setup, service, version, replicas, deadline, budget)
                return
            if state and state != last:
                self.report(f"[{setup.name}] swarm: {state}" + (f" ({us.get('Message')})" if us.get("Message") else ""))
                last = state
            if state == "completed":
                return
            if state in ("rollback_completed", "rollback_paused", "paused"):
                raise self._rolled_back(setup, service, state, reason or str(us.get("Message") or ""), version)
            if time.monotonic() > deadline:
                self.report(f"[{setup.name}] no convergence within {budget:.0f} s: asking Swarm to roll back")
                try:
                    engine.rollback_service(service)
                except CriError:
                    pass
                raise deploy_error(
                    setup,
                    f"Swarm did not finish the update of {service} within {budget:.0f} s "
                    f"(state: {state or 'not started'}); asked Swarm to roll it back",
                    "",
                )
            time.sleep(0.5)

    def _wait_created(
        self, setup: Setup, service: str, version: Version, replicas: int, deadline: float, budget: float
    ) -> None:
        while True:
            tasks = [t for t in engine.service_tasks(service) if self._version_of(t) == str(version.number)]
            failed = [t for t in tasks if (t.get("Status") or {}).get("State") in _FAILED]
            if failed:
                t = failed[0]
                err = (t.get("Status") or {}).get("Err") or (t.get("Status") or {}).get("State")
                check = self._check_output(t)
                if check:
                    err = f"{err}; its last health check said: {check[-300:]}"
                raise deploy_error(
                    setup,
                    f"task {self._task_name(t)} of version {version.number} failed: {err}",
                    engine.service_logs(str(t.get("ID")), tail=20),
                )
            running = [t for t in tasks if self._current(t) and (t.get("Status") or {}).get("State") == "running"]
            if len(running) >= replicas:
                return
            if time.monotonic() > deadline:
                raise deploy_error(
                    setup,
                    f"{len(running)} of {replicas} task(s) of version {version.number} were running "
                    f"and healthy after {budget:.0f} s",
                    engine.service_logs(service, tail=20),
                )
            time.sleep(0.5)

    def _wait_running(self, setup: Setup, service: str, *, deadline: float) -> None:
        while time.monotonic() < deadline:
            tasks = [t for t in engine.service_tasks(service) if self._current(t)]
            if tasks and all((t.get("Status") or {}).get("State") == "running" for t in tasks):
                return
            time.sleep(0.5)
        raise deploy_error(setup, f"the front proxy {service} did not start", engine.service_logs(service, tail=20))

    def _wait_answers(self, setup: Setup, port: int, is_http: bool) -> None:
        deadline = time.monotonic() + 30
        while not _answers(self.settings.publish_address, port, is_http):
            if time.monotonic() > deadline:
                raise deploy_error(
                    setup, f"{self.settings.publish_address}:{port} does not answer after the update", ""
                )
            time.sleep(0.2)

    def _rolled_back(self, setup: Setup, service: str, state: str, message: str, version: Version) -> CriError:
        tasks = [t for t in engine.service_tasks(service) if self._version_of(t) == str(version.number)]
        bad = [t for t in tasks if (t.get("Status") or {}).get("Err")] or tasks
        m = re.search(r"task ([a-z0-9]{25})", message)
        if m:
            bad = [t for t in tasks if t.get("ID") == m.group(1)] or bad
        detail, log = "", ""
        if bad:
            t = bad[0]
            status = t.get("Status") or {}
            detail = f"; task {self._task_name(t)}: {status.get('Err') or status.get('State')}"
            check = self._check_output(t)
            if check:
                detail += f"; its last health check said: {check[-300:]}"
            log = engine.service_logs(str(t.get("ID")), tail=20)
        if state == "rollback_completed":
            what = f"Swarm rolled the update of {service} back ({message}){detail}"
        else:
            what = f"the update of {service} stopped in state {state} ({message}){detail}; check `invoke status`"
        return deploy_error(setup, what, log)

    # -- tasks ----------------------------------------------------------------------------------

    @staticmethod
    def _version_of(task: Mapping[str, Any]) -> str | None:
        labels = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
        return labels.get(f"{LABEL}.version")

    @staticmethod
    def _check_output(task: Mapping[str, Any]) -> str:
        """The task container's last health check output, when the container is on this engine."""
        cid = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        try:
            return engine.health_output(str(cid)) if cid else ""
        except CriError:
            return ""

    @staticmethod
    def _current(task: Mapping[str, Any]) -> bool:
        return task.get("DesiredState") in ("running", "ready", "accepted", "assigned")

    @staticmethod
    def _task_name(task: Mapping[str, Any]) -> str:
        labels = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
        name = labels.get(f"{LABEL}.service") or str(task.get("ServiceID", ""))[:12]
        slot = task.get("Slot")
        return f"{name}.{slot}" if slot else f"{name}.{str(task.get('NodeID', ''))[:12]}"

    # -- health check ---------------------------------------------------------------------------

    def _health(self, setup: Setup) -> dict[str, Any] | None:
        """The container health check: readinessCheck until it passed once, healthCheck after.

        Swarm goes on with a start-first update only when the new task is healthy; a task that
        turns unhealthy is replaced, and within the monitor window that fails the update
        (rollback). Without either there is no check: a started task gets traffic, as on
        Zerops without a readinessCheck (and on the local target)."""
        readiness = setup.deploy.readiness_check
        health_check = setup.run.health_check
        ready: str | None = None
        if readiness is not None:
            ready = check_command(readiness.http_get, readiness.exec.text if readiness.exec else None)
        health: str | None = None
        if health_check is not None:
            health = check_command(health_check.http_get, health_check.exec.text if health_check.exec else None)
        if ready is None and health is None:
            return None
        if ready and health:
            test = f"if [ -e {_READY_MARKER} ]; then (\n{health}\n); else (\n{ready}\n) && touch {_READY_MARKER}; fi"
        elif ready:
            test = f"[ -e {_READY_MARKER} ] || {{ (\n{ready}\n) && touch {_READY_MARKER}; }}"
        else:
            assert health is not None
            test = health
        if readiness is not None:
            interval = readiness.retry_period
        else:
            interval = 1.0 if health_check is None else float(health_check.exec_period or 5)
        start = readiness.failure_timeout if readiness is not None else (60.0 if ready else 0.0)
        retries = 1
        if health_check is not None:
            retries = max(1, math.ceil(float(health_check.failure_timeout or 30) / max(interval, 0.001)))
        return {
            "test": _q(["CMD-SHELL", test]),
            "interval": _q(_ms(interval)),
            "timeout": _q("10s"),
            "retries": retries,
            "start_period": _q(_ms(start)),
            "_start": start,
            "_interval": interval,
            "_retries": retries,
        }

    # -- ports ----------------------------------------------------------------------------------

    def _ports_mode(self, setup: Setup, swarm: Mapping[str, Any]) -> str:
        if not setup.run.ports:
            return "none"
        if self.ports_mode != "auto":
            return self.ports_mode
        cluster = str((swarm.get("Cluster") or {}).get("ID") or swarm.get("NodeID") or "unknown")
        with opened(self.project, self.settings, self.workspace) as ws:
            known = records.swarm_ports(ws.store, cluster)
        if known and known.get("mode") in ("mesh", "proxy"):
            return str(known["mode"])
        if not engine.network_exists("ingress"):
            works, why = False, "this swarm has no ingress network"
        else:
            self.report(f"[{setup.name}] swarm.ports auto: checking once whether the routing mesh works on this swarm")
            image = self._proxy_image_ref(setup)
            works, why = engine.ingress_probe(
                image,
                address=self.settings.publish_address,
                labels={f"{LABEL}.project": self.pid, f"{LABEL}.role": "ingress-probe"},
            )
        mode = "mesh" if works else "proxy"
        self.report(f"[{setup.name}] swarm.ports auto: {why}: using {mode} (remembered for this swarm)")
        with opened(self.project, self.settings, self.workspace) as ws:
            records.set_swarm_ports(ws.store, cluster, mode, why)
        return mode

    def _mesh_ports(self, setup: Setup, before: dict[str, Any] | None) -> dict[int, int]:
        have: dict[int, int] = {}
        for p in (((before or {}).get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []:
            if p.get("PublishedPort"):
                have[int(p["TargetPort"])] = int(p["PublishedPort"])
        out = {}
        for p in setup.run.ports:
            out[p.port] = (
                self.settings.host_port(setup.name, p.port)
                or have.get(p.port)
                or _free_port(self.settings.publish_address, setup.name, p.port)
            )
        return out

    def _proxy_image_ref(self, setup: Setup) -> str:
        """The front proxy image (the one the local target runs), pushed and pinned by digest."""
        local = proxy.image(self.settings, self.cache_dir, self.pid, setup, self.report)
        return engine.push_image(local, f"{self._registry()}/{local}")

    def _proxy(self, setup: Setup, service: str, ports: list[Port]) -> _Proxy:
        name = self.proxy_name(setup)
        existing = engine.service_state(name)
        have: dict[int, int] = {}
        for p in (((existing or {}).get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []:
            if p.get("PublishedPort"):
                have[int(p["TargetPort"])] = int(p["PublishedPort"])
        published = {
            p.port: self.settings.host_port(setup.name, p.port)
            or have.get(p.port)
            or _free_port(self.settings.publish_address, setup.name, p.port)
            for p in ports
        }
        replicas = self.settings.replicas_for(setup.name)
        text = proxy.swarm_config(setup, service, max(MIN_SLOTS, 2 * replicas + max(self.parallelism, 1)), ports)
        digest = fingerprint.digest([text])[:12]
        config_name = f"{name}-{digest}"
        work = cache_folder(self.cache_dir, "swarm")
        config_file = work / component(f"{self._short(setup)}-haproxy.cfg", "proxy configuration file")
        with writing("the proxy configuration", work, partial=[config_file]):
            config_file.write_text(text)
        spec = existing.get("Spec") if existing else None
        current_image = (((spec or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
        current_configs = [
            c.get("ConfigName")
            for c in (((spec or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Configs") or []
        ]
        current_placement = (((spec or {}).get("TaskTemplate") or {}).get("Placement") or {}).get("Constraints") or []
        same = (
            existing is not None
            and have == published
            and config_name in current_configs
            and bool(current_image)
            and sorted(current_placement) == sorted(self.proxy_constraints)
        )
        # An unchanged proxy keeps its image: a new cri-tasks release must not restart it needlessly.
        image = str(current_image) if same else self._proxy_image_ref(setup)
        labels = self._labels(setup, role="proxy")
        return _Proxy(
            service=name,
            ports=published,
            changes=not same,
            spec={
                "name": _q(f"{self._short(setup)}-proxy"),
                "image": _q(image),
                "labels": [(_q(k), _q(v)) for k, v in labels.items()],
                "ports": [{"target": c, "published": h} for c, h in published.items()],
                "config_key": _q(f"haproxy-{digest}"),
                "config_name": _q(config_name),
                "config_file": _q(str(config_file)),
                "config_labels": [(_q(k), _q(v)) for k, v in {**labels, f"{LABEL}.role": "proxy-config"}.items()],
                "constraints": _q(self.proxy_constraints) if self.proxy_constraints else "",
            },
        )

    def _urls(self, setup: Setup, published: Mapping[int, int]) -> list[str]:
        out = []
        for p in setup.run.ports:
            if p.port in published:
                scheme = "http" if p.http_support else p.protocol
                out.append(f"{scheme}://{self.settings.publish_address}:{published[p.port]}/")
        return out

    def zsc_volume(self, setup: Setup) -> str:
        """The setup's ``zsc execOnce`` store, one volume name for the life of the service (as
        on the local target). A Docker volume is local to its node: on a swarm of several nodes
        each node has its own store (docs/swarm.md)."""
        return f"cri-{self.pid}-{self._short(setup)}-zsc"

    # -- the compose file -----------------------------------------------------------------------

    def _compose(
        self,
        setup: Setup,
        version: Version,
        image: str,
        env_file: Path,
        activation: str,
        mode: str,
        app_ports: Mapping[int, int],
        replicas: int,
        order: str,
        health: dict[str, Any] | None,
        front: _Proxy | None,
    ) -> str:
        service = self.service_name(setup)
        labels = self._labels(setup, role="app", version=str(version.number), activation=activation, service=service)
        volume_labels = self._labels(setup, role="zsc")
        constraints = self._constraints_for(setup)
        by_port = {p.port: p for p in setup.run.ports}
        return render(
            "swarm-stack.yml.j2",
            {
                "setup": setup.name,
                "version": version.number,
                "stack": self.stack,
                "stop_grace_period": _q(f"{self.settings.stop_timeout}s"),
                "parallelism": self.parallelism,
                "monitor": _q(_ms(self.monitor)),
                "network_label": (_q(f"{LABEL}.project"), _q(self.pid)),
                "volume": {
                    "name": _q(self.zsc_volume(setup)),
                    "labels": [(_q(k), _q(v)) for k, v in volume_labels.items()],
                },
                "app": {
                    "name": _q(self._short(setup)),
                    "image": _q(image),
                    "hostname": _q(f"{self._short(setup)}-{{{{.Task.Slot}}}}"),
                    "env_file": _q(str(env_file)),
                    "labels": [(_q(k), _q(v)) for k, v in labels.items()],
                    "health": health,
                    "ports": [
                        {"target": c, "published": h, "protocol": _q(by_port[c].protocol)} for c, h in app_ports.items()
                    ],
                    "replicas": replicas,
                    "endpoint_mode": "vip" if mode == "mesh" else "dnsrr",
                    "constraints": _q(constraints) if constraints else "",
                    "order": order,
                },
                "proxy": front.spec if front is not None else None,
            },
        )

    # -- after a deploy -------------------------------------------------------------------------

    def _remember(self, setup: Setup, version: Version, image: str) -> None:
        """Keep the digest of each version; forget node-local registry references of versions
        that are no longer kept (the registry itself keeps them: its retention is its own)."""
        with opened(self.project, self.settings, self.workspace) as ws:
            digests = records.swarm_digests(ws.store, setup.name)
            digests[str(version.number)] = image.rsplit("@", 1)[-1]
            history = records.deploy_history(ws.store, setup.name) or records.DeployHistory()
            kept = {str(v.number) for v in history.versions} | {str(version.number)}
            digests = {k: v for k, v in digests.items() if k in kept}
            records.set_swarm_digests(ws.store, setup.name, digests)
        keep = set(digests.values())
        repo = image.split("@", 1)[0].rsplit(":", 1)[0]
        stale = [r for r in engine.image_references(repo) if "@" in r and r.split("@", 1)[1] not in keep]
        if stale:
            try:
                engine.remove_images(stale)
            except CriError:
                pass

    def _tidy(self, setup: Setup, activation: str, front: _Proxy | None) -> None:
        """Per-activation zsc volumes of earlier releases and proxy configs no longer used
        (in-use ones stay)."""
        for name in engine.list_volumes(self._labels(setup, role="zsc")):
            if name != self.zsc_volume(setup):
                engine.remove_volume(name)
        current = json.loads(front.spec["config_name"]) if front is not None else None
        engine.remove_configs(
            [c for c in engine.list_configs(self._labels(setup, role="proxy-config")) if c != current]
        )

    # -- operate --------------------------------------------------------------------------------

    def container_names(self, setup: Setup) -> list[str]:
        """The app's task containers on this engine (all of them on a one-node swarm)."""
        return engine.list_containers({"com.docker.swarm.service.name": self.service_name(setup)})

    def running_version(self, setup: Setup, recorded: int | None) -> int | None:
        """The version the setup's service runs (its spec, after any rollback Swarm made), for
        :func:`cri_tasks.deploy_phase.reconcile`; None while an update is under way or when
        there is no service."""
        st = engine.service_state(self.service_name(setup))
        if st is None or ((st.get("UpdateStatus") or {}).get("State") or "") in (
            "updating",
            "rollback_started",
            "paused",
            "rollback_paused",
        ):
            return None
        labels = (((st.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Labels") or {}
        value = str(labels.get(f"{LABEL}.version") or "")
        return int(value) if value.isdigit() else None

    def logs(self, setup: Setup, *, tail: int | None = 100) -> list[tuple[str, str]]:
        service = self.service_name(setup)
        if engine.service_state(service) is None:
            return []
        return [(service, engine.service_logs(service, tail=tail))]

    def follow_logs(self, setup: Setup, *, tail: int = 50) -> int:
        return engine.follow_service_logs([self.service_name(setup)], tail=tail)

    def status(self, setup: Setup) -> dict[str, Any]:
        service = self.service_name(setup)
        try:
            st = engine.service_state(service)
        except EngineError as exc:
            return {"containers": [], "urls": [], "service": None, "proxy": None, "nodes": {}, "error": str(exc)}
        if st is None:
            return {"containers": [], "urls": [], "service": None, "proxy": None, "nodes": {}}
        swarm_nodes = engine.swarm_nodes()
        hosts = {n.get("ID", ""): n.get("Hostname", "") for n in swarm_nodes}
        tasks = []
        for t in sorted(engine.service_tasks(service), key=lambda t: (t.get("Slot") or 0, t.get("CreatedAt") or "")):
            if not self._current(t):
                continue
            status = t.get("Status") or {}
            cid = (status.get("ContainerStatus") or {}).get("ContainerID")
            health = engine.state(cid).health if cid else None
            node_id = str(t.get("NodeID") or "")
            node = next((h for i, h in hosts.items() if node_id.startswith(i)), node_id[:12] or None)
            tasks.append(
                {
                    "name": self._task_name(t),
                    "node": node,
                    "status": status.get("State"),
                    "health": health,
                    "desired": t.get("DesiredState"),
                    "version": self._version_of(t),
                    "image": ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Image"),
                    "error": status.get("Err") or None,
                }
            )
        nodes: dict[str, list[dict[str, Any]]] = {}
        for t in tasks:
            nodes.setdefault(str(t["node"]), []).append({k: t[k] for k in ("name", "status", "health", "version")})
        spec = st.get("Spec") or {}
        us = st.get("UpdateStatus") or {}
        proxy_st = engine.service_state(self.proxy_name(setup))
        published: dict[int, int] = {}
        for source in (proxy_st, st):
            for p in (((source or {}).get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []:
                if p.get("PublishedPort"):
                    published[int(p["TargetPort"])] = int(p["PublishedPort"])
        return {
            "containers": tasks,
            "nodes": nodes,
            # every node of the swarm as the manager sees it: a dead one is "down"
            "node_states": {n.get("Hostname", ""): str(n.get("Status", "")).lower() for n in swarm_nodes},
            "service": {
                "name": service,
                "replicas": ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas"),
                "image": ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image"),
                "endpoint_mode": (spec.get("EndpointSpec") or {}).get("Mode"),
                "update": {"state": us.get("State"), "message": us.get("Message")} if us else None,
            },
            "proxy": {
                "name": self.proxy_name(setup),
                "image": (
                    (((proxy_st.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
                ),
            }
            if proxy_st
            else None,
            "urls": self._urls(setup, published),
        }

    def stop(self, setup: Setup) -> list[str]:
        """Remove the setup's services (app and front proxy), then its proxy configs on this
        engine; the stack's network goes with its last service. Versions, images and the zsc
        execOnce store stay."""
        names = [n for n in (self.service_name(setup), self.proxy_name(setup)) if engine.service_state(n) is not None]
        engine.remove_services(names)
        for n in names:
            engine.wait_containers_gone({"com.docker.swarm.service.name": n}, timeout=self.settings.stop_timeout + 30)
        # the zsc execOnce store stays, as on the local target: keys run once for the life of the
        # service, and stop keeps the versions too
        engine.remove_configs(engine.list_configs(self._labels(setup, role="proxy-config")))
        if not engine.list_services({"com.docker.stack.namespace": self.stack}):
            engine.remove_stack(self.stack)
        return names


def _free_port(address: str, setup: str, port: int) -> int:
    """A port free on ``address`` of this machine. On a remote swarm ``publish_address`` is a
    node's, not this machine's: then the port must come from ``cri.publish``."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((address, 0))
            return int(s.getsockname()[1])
    except OSError as exc:
        raise ConfigError(
            f"[{setup}] port {port}: cannot pick a free host port on cri.publish_address {address} "
            f"from this machine ({exc.strerror}); on a swarm whose nodes are other machines set it in "
            f'cri.publish (e.g. publish: {{{setup}: {{"{port}": 8080}}}}), free on every node'
        ) from None


def _answers(host: str, port: int, is_http: bool) -> bool:
    """One request: HTTP below 500 (the proxy says 503 while it knows no task), or a TCP connect."""
    try:
        if not is_http:
            with socket.create_connection((host, port), timeout=2):
                return True
        conn = http.client.HTTPConnection(host, port, timeout=3)
        try:
            conn.request("GET", "/", headers={"Connection": "close", "User-Agent": "cri-tasks-probe"})
            return conn.getresponse().status < 500
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False
