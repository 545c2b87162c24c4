"""The local target: app versions as containers on this Docker engine, behind a front proxy.

The proxy (:mod:`cri_tasks.targets.proxy`) owns the published ports and stays up across
deploys. A deploy starts fresh containers, waits for their readiness check, rewrites
the proxy's configuration to point at them, reloads it gracefully (SIGUSR2: the old worker
finishes its connections) and only then stops the old containers. ``temporaryShutdown: true``
stops the old containers first. Every switch is measured by a probe on the published port.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import engine
from ..engine import LABEL
from ..errors import ConfigError, Problem
from ..model import Port, Project, Setup
from ..paths import cache_folder, component, writing
from ..probe import Probe, SwitchReport
from ..results import Reporter
from ..settings import Settings
from ..workspace import Workspace, project_id
from . import proxy
from .base import Activation, HealthTimings, Version, check_command, deploy_error, env_file_prefix


@dataclass(frozen=True)
class _Proxy:
    name: str
    ports: dict[int, int]  # container port -> host port


class LocalTarget:
    """App versions as containers on this engine behind a front proxy; see the module docstring."""

    #: each setup of a deploy stands on its own: a failed one leaves the others as they landed
    all_or_nothing: ClassVar[bool] = False

    def __init__(
        self, project: Project, settings: Settings, report: Reporter, workspace: Workspace | None = None
    ) -> None:
        self.project, self.settings, self.report = project, settings, report
        self.pid = project_id(project)
        self.cache_dir = workspace.cache_dir if workspace is not None else settings.cache_path(project.root)
        self.network = f"cri-{self.pid}"

    # -- names ----------------------------------------------------------------------------------

    def _labels(self, setup: Setup, **extra: str) -> dict[str, str]:
        return {
            f"{LABEL}.project": self.pid,
            f"{LABEL}.setup": setup.name,
            **{f"{LABEL}.{k}": v for k, v in extra.items()},
        }

    def _proxy_name(self, setup: Setup) -> str:
        return f"cri-{self.pid}-{setup.name.lower()}-proxy"

    def container_names(self, setup: Setup) -> list[str]:
        return engine.list_containers(self._labels(setup, role="app"))

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
        engine.ensure_network(self.network, labels={f"{LABEL}.project": self.pid})
        old = [n for n in self.container_names(setup)]
        activation = secrets.token_hex(3)
        if setup.deploy.temporary_shutdown and old:
            self.report(f"[{setup.name}] temporaryShutdown: stopping {len(old)} old container(s) first")
            engine.remove_containers(old, stop_timeout=self.settings.stop_timeout)
            old = []
        new = self._start(setup, version, env, activation)
        try:
            self._wait_ready(setup, new)
            # Only a container that got ready is restarted when it exits (its app crashed, or its
            # health check stopped it): one that exits before stays the deploy's failure.
            engine.set_restart_policy(new, "unless-stopped")
        except BaseException:  # a failed check or Ctrl-C: the new containers go, the old stay
            self._discard(new, activation, setup)
            raise
        tcp_ports = [p for p in run.ports if p.protocol == "tcp"]
        report: SwitchReport | None = None
        urls: list[str] = []
        if tcp_ports:
            try:
                front = self._ensure_proxy(setup, tcp_ports, new, version)
            except BaseException:  # e.g. a host port taken: nothing switched, the old version serves
                self._discard(new, activation, setup)
                raise
            urls = [self._url(p, front.ports[p.port]) for p in tcp_ports]
            probe_port = next((p for p in tcp_ports if p.http_support), tcp_ports[0])
            with Probe(
                self.settings.publish_address, front.ports[probe_port.port], http=probe_port.http_support
            ) as probe:
                time.sleep(0.2)  # a few requests against the old version first
                try:
                    self._switch(setup, front, tcp_ports, new, version)
                except BaseException:
                    self._discard(new, activation, setup)
                    raise
                if old:
                    self.report(f"[{setup.name}] stopping {len(old)} old container(s)")
                    engine.remove_containers(old, stop_timeout=self.settings.stop_timeout)
                time.sleep(0.2)  # and a few after the old containers are gone
                report = probe.stop()
            self.report(f"[{setup.name}] switch: {report}")
        elif old:
            engine.remove_containers(old, stop_timeout=self.settings.stop_timeout)
        self._remove_stale_volumes(setup)
        return Activation(containers=new, urls=urls, switch=report)

    def _start(self, setup: Setup, version: Version, env: dict[str, str], activation: str) -> list[str]:
        n = self.settings.replicas_for(setup.name)
        volume = self.zsc_volume(setup)
        engine.ensure_volume(volume, labels=self._labels(setup, role="zsc"))
        names = []
        env_dir = cache_folder(self.cache_dir, "tmp")
        for k in range(1, n + 1):
            name = f"cri-{self.pid}-{setup.name.lower()}-v{version.number}-{k}-{activation}"
            fd, env_path = tempfile.mkstemp(dir=env_dir, prefix=env_file_prefix(setup.name))
            try:
                with writing("the containers' env file", env_dir), os.fdopen(fd, "w", encoding="utf-8") as f:
                    for key, value in env.items():
                        # docker's env files are one line per variable: a value with a newline
                        # cannot travel this way.
                        if "\n" in value:
                            raise ConfigError(
                                f"[{setup.name}] env variable {key}: values with newlines are not supported"
                            )
                        f.write(f"{key}={value}\n")
                engine.run_container(
                    version.image_id,  # the id it was built as (deploy_phase.checked_image)
                    name=name,
                    network=self.network,
                    labels=self._labels(setup, role="app", version=str(version.number), activation=activation),
                    env_file=Path(env_path),
                    volumes=[(volume, "/var/lib/zsc")],
                    health=self._health(setup),
                    hostname=f"{setup.name.lower()}-{k}",
                )
            finally:
                os.unlink(env_path)
            names.append(name)
        self.report(f"[{setup.name}] started {n} container(s) of version {version.number}")
        return names

    def _health(self, setup: Setup) -> dict[str, Any]:
        """Docker's view of run.healthCheck (``status`` shows it); acting on it is the start
        script's watchdog (restart) and the front proxy's checks (rotation)."""
        health_check = setup.run.health_check
        if health_check is None:
            return {}
        command = check_command(health_check.http_get, health_check.exec.text if health_check.exec else None)
        timings = HealthTimings.of(health_check)
        retries = max(1, int(timings.failure // timings.period))
        # whole seconds: python-on-whales passes ints as "<n>s" (it appended "s" to a string too)
        return {
            "health_cmd": command,
            "health_interval": max(1, round(timings.period)),
            "health_timeout": 5,
            "health_retries": retries,
        }

    def _wait_ready(self, setup: Setup, names: list[str]) -> None:
        """Wait for ``deploy.readinessCheck`` when there is one; without one a container counts as
        ready once it runs (only a container that already exited fails here)."""
        rc = setup.deploy.readiness_check
        retry = rc.retry_period if rc else 1.0
        timeout = rc.failure_timeout if rc else 60.0
        deadline = time.monotonic() + timeout
        pending = list(names)
        pause = 0.1
        last_output: dict[str, str] = {}
        self.report(f"[{setup.name}] waiting for readiness of {len(names)} container(s)")
        while pending:
            for name in list(pending):
                st = engine.state(name, self.network)
                if not st.running:
                    raise deploy_error(
                        setup,
                        f"container {name} exited (code {st.exit_code}) before it was ready",
                        engine.logs(name, tail=20),
                    )
                ok, output = self._ready(setup, name, st.ip)
                last_output[name] = output
                if ok:
                    pending.remove(name)
            if not pending:
                break
            if time.monotonic() > deadline:
                name = pending[0]
                detail = (
                    f"readiness check did not pass within {timeout:.0f} s: {last_output.get(name, '').strip()[-300:]}"
                )
                raise deploy_error(setup, f"container {name}: {detail}", engine.logs(name, tail=20))
            # Apps usually listen a fraction of a second after the container starts: check again
            # soon, backing off to retryPeriod (Zerops' interval), instead of waiting a whole one.
            time.sleep(min(retry, pause))
            pause *= 2
        self.report(f"[{setup.name}] ready")

    def _ready(self, setup: Setup, name: str, ip: str | None) -> tuple[bool, str]:
        rc = setup.deploy.readiness_check
        if rc is not None and rc.http_get is not None:
            g = rc.http_get
            url = f"{g.scheme or 'http'}://127.0.0.1:{g.port}{g.path}"
            cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-L", "--max-time", "5"]
            if g.host:
                cmd += ["-H", f"Host: {g.host}"]
            code, out = engine.exec_in(name, [*cmd, url], timeout=10)
            return code == 0 and out.strip()[-3:].startswith("2"), f"GET {url}: {out.strip() or f'exit {code}'}"
        if rc is not None and rc.exec is not None:
            code, out = engine.exec_in(
                name, ["timeout", "5", "/bin/sh", "-c", rc.exec.text], user="zerops", workdir="/var/www", timeout=10
            )
            return code == 0, f"exec exited {code}: {out[-200:]}"
        # No deploy.readinessCheck: no readiness gate, as on Zerops (a started container gets
        # traffic; the official Gleam recipe's `dev` setup idles with `zsc noop` on port 3000).
        return True, ""

    def _discard(self, names: list[str], activation: str, setup: Setup) -> None:
        # the zsc volume stays: keys a failed version ran successfully stay run (as on Zerops)
        engine.remove_containers(names, stop_timeout=2)

    def zsc_volume(self, setup: Setup) -> str:
        """The setup's ``zsc execOnce`` store (/var/lib/zsc): one volume for the life of the
        service, shared by every container of every version, kept by deploys, rollbacks and
        ``stop`` (which keeps the versions too)."""
        return f"cri-{self.pid}-{setup.name.lower()}-zsc"

    def _remove_stale_volumes(self, setup: Setup) -> None:
        """Per-activation volumes of earlier cri-tasks releases (the store was per activation)."""
        keep = self.zsc_volume(setup)
        for name in engine.list_volumes({f"{LABEL}.project": self.pid, f"{LABEL}.setup": setup.name}):
            if name.startswith(f"cri-{self.pid}-") and name.endswith("-zsc") and name != keep:
                engine.remove_volume(name)

    # -- the proxy ------------------------------------------------------------------------------

    def _ensure_proxy(self, setup: Setup, ports: list[Port], servers: list[str], version: Version) -> _Proxy:
        name = self._proxy_name(setup)
        st = engine.state(name)
        wanted = {p.port for p in ports}
        if st.exists:
            have = {int(k.split("/")[0]): int(v.rsplit(":", 1)[1]) for k, v in st.ports.items()}
            if set(have) == wanted and st.running:
                return _Proxy(name, have)
            self.report(f"[{setup.name}] the ports changed: recreating the front proxy (a short outage)")
            engine.remove_containers([name], stop_timeout=2)
        image = proxy.image(self.settings, self.cache_dir, self.pid, setup, self.report)
        publish = []
        for p in ports:
            host_port = self.settings.host_port(setup.name, p.port) or _free_port(self.settings.publish_address)
            publish.append((f"{self.settings.publish_address}:{host_port}", p.port))
        engine.run_container(
            image,
            name=name,
            network=self.network,
            labels=self._labels(setup, role="proxy"),
            publish=publish,
            create_only=True,
            cap_drop=["ALL"],
            cap_add=["NET_BIND_SERVICE"],
        )
        self._write_config(name, setup, ports, servers, version)
        engine.start_container(name)  # a port taken: the error, and the created proxy is removed
        st = engine.state(name)
        have = {int(k.split("/")[0]): int(v.rsplit(":", 1)[1]) for k, v in st.ports.items()}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _accepts(self.settings.publish_address, next(iter(have.values()))):
            time.sleep(0.1)
        self.report(
            f"[{setup.name}] front proxy {name} publishes "
            + ", ".join(f"{self.settings.publish_address}:{h}->{c}" for c, h in have.items())
        )
        return _Proxy(name, have)

    def _write_config(
        self, proxy_name: str, setup: Setup, ports: list[Port], servers: list[str], version: Version
    ) -> None:
        entries = []
        for slot, container in enumerate(servers, start=1):
            ip = engine.state(container, self.network).ip
            if ip is None:
                raise deploy_error(
                    setup, f"container {container} has no address on {self.network}", engine.logs(container, tail=20)
                )
            entries.append({"name": f"v{version.number}_{slot}", "ip": ip})
        text = proxy.local_config(setup, version.number, ports, entries)
        work = self.cache_dir / "tmp"
        path = work / component(f"haproxy-{setup.name}.cfg", "proxy configuration file")
        with writing("the proxy configuration", work, partial=[path]):
            cache_folder(self.cache_dir, "tmp")
            path.write_text(text)
        engine.copy_into(proxy_name, path, proxy.CONFIG_PATH)

    def _switch(
        self, setup: Setup, running_proxy: _Proxy, ports: list[Port], servers: list[str], version: Version
    ) -> None:
        self._reload(
            setup,
            running_proxy.name,
            f"version {version.number}",
            before=lambda: self._write_config(running_proxy.name, setup, ports, servers, version),
        )

    def _reload(self, setup: Setup, proxy_name: str, what: str, before: Callable[[], None] | None = None) -> None:
        """Reload the proxy gracefully (SIGUSR2) and wait until HAProxy says it loaded the
        configuration; ``before`` writes the new one."""
        text = engine.logs(proxy_name)
        loaded, failures = text.count("Loading success"), text.count("Loading failure")
        if before is not None:
            before()
        engine.signal(proxy_name, "USR2")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = engine.logs(proxy_name)
            if text.count("Loading success") > loaded:
                self.report(f"[{setup.name}] front proxy now sends traffic to {what}")
                return
            if text.count("Loading failure") > failures:
                raise deploy_error(setup, "the front proxy refused the new configuration", text[-1500:])
            time.sleep(0.05)
        raise deploy_error(
            setup, "the front proxy did not confirm the reload within 15 s", engine.logs(proxy_name, tail=20)
        )

    def _url(self, port: Port, host_port: int) -> str:
        scheme = "http" if port.http_support else "tcp"
        return f"{scheme}://{self.settings.publish_address}:{host_port}/"

    # -- operate --------------------------------------------------------------------------------

    def status(self, setup: Setup) -> dict[str, Any]:
        containers = []
        for name in self.container_names(setup):
            st = engine.state(name, self.network)
            containers.append(
                {
                    "name": name,
                    "status": st.status,
                    "health": st.health,
                    "version": st.labels.get(f"{LABEL}.version"),
                    "image": st.image,
                }
            )
        front = engine.state(self._proxy_name(setup))
        urls = []
        if front.exists:
            for key, binding in front.ports.items():
                port = int(key.split("/")[0])
                match = next((p for p in setup.run.ports if p.port == port), None)
                urls.append(self._url(match, int(binding.rsplit(":", 1)[1])) if match else f"tcp://{binding}/")
        return {
            "containers": containers,
            "proxy": {"name": front.name, "status": front.status} if front.exists else None,
            "urls": urls,
        }

    def running_version(self, setup: Setup, recorded: int | None) -> int | None:
        """The version that serves, for :func:`cri_tasks.deploy_phase.reconcile`: the one the
        front proxy's configuration names when containers of it run, or for a setup without TCP
        ports (no proxy) the newest version among its running containers; None when that cannot
        be told (no proxy yet: a first deploy that never switched).

        A kill between writing the proxy's configuration and its reload leaves a file that
        HAProxy has not loaded yet: when the file names another version than ``recorded``, the
        proxy is reloaded (gracefully, as a deploy does) so that the file is what serves."""
        running = {}
        for name in self.container_names(setup):
            container = engine.state(name)
            if container.running and (label := container.labels.get(f"{LABEL}.version", "")).isdigit():
                running[int(label)] = name
        proxy_name = self._proxy_name(setup)
        if any(p.protocol == "tcp" for p in setup.run.ports):  # the proxy decides what serves
            if not engine.state(proxy_name).running:
                return None
            code, text = engine.exec_in(proxy_name, ["cat", proxy.CONFIG_PATH], timeout=10)
            number = proxy.configured_version(text) if code == 0 else None
            if number is None or number not in running:
                return None  # a configuration whose containers are gone: the deploy that wrote it failed
            if number != recorded:
                self._reload(setup, proxy_name, f"version {number}")
            return number
        return max(running) if running else None

    def logs(self, setup: Setup, *, tail: int | None = 100) -> list[tuple[str, str]]:
        return [(name, engine.logs(name, tail=tail)) for name in self.container_names(setup)]

    def follow_logs(self, setup: Setup, *, tail: int = 50) -> int:
        return engine.follow_logs(self.container_names(setup), tail=tail)

    def stop(self, setup: Setup) -> list[str]:
        names = self.container_names(setup)
        proxy_name = self._proxy_name(setup)
        if engine.state(proxy_name).exists:
            names.append(proxy_name)
        engine.remove_containers(names, stop_timeout=self.settings.stop_timeout)
        self._remove_stale_volumes(setup)
        # The project's network goes with its last container (another setup of the project may
        # still use it; Docker refuses to remove a network in use anyway).
        if not engine.list_containers({f"{LABEL}.project": self.pid}):
            engine.remove_network(self.network)
        return names


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
