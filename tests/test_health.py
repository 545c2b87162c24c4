"""run.healthCheck on the local target, without the engine: the front proxy's checks and the
start script's watchdog (the engine tests in test_runtime_engine.py show them acting)."""

from __future__ import annotations

from pathlib import Path

from cri_tasks.dockerfile import render
from cri_tasks.loader import load_project
from cri_tasks.model import Setup
from cri_tasks.targets.proxy import health as proxy_health


def _setup(tmp_path: Path, health: str) -> Setup:
    (tmp_path / "zerops.yml").write_text(
        "zerops:\n  - setup: app\n    build: {deployFiles: ./}\n    run:\n      start: ./app\n"
        "      ports: [{port: 8000, httpSupport: true}]\n" + health
    )
    return load_project(tmp_path / "zerops.yml").setups[0]


def test_an_http_check_becomes_haproxys_own_check_with_zerops_timings(tmp_path: Path) -> None:
    s = _setup(
        tmp_path,
        "      healthCheck:\n        httpGet: {port: 8000, path: /health, host: example.com}\n"
        "        execPeriod: 2\n        disconnectTimeout: 5\n        recoveryTimeout: 4\n",
    )
    health = proxy_health(s)
    assert health == {
        "port": 8000,
        "path": "/health",
        "host": "example.com",
        "ssl": False,
        "inter": "2s",
        "fall": 3,
        "rise": 2,
    }
    cfg = render(
        "haproxy.cfg.j2",
        {
            "setup": "app",
            "version": 1,
            "ports": [{"port": 8000, "mode": "http"}],
            "servers": [{"name": "v1_1", "ip": "10.0.0.2"}],
            "health": health,
        },
    )
    assert "http-check send meth GET uri /health ver HTTP/1.1 hdr Host example.com" in cfg
    assert "server v1_1 10.0.0.2:8000 check port 8000 inter 2s fall 3 rise 2" in cfg


def test_an_exec_check_or_none_leaves_the_proxy_a_tcp_check(tmp_path: Path) -> None:
    s = _setup(tmp_path, "      healthCheck:\n        exec: {command: test -f /tmp/ok}\n")
    assert proxy_health(s) is None
    cfg = render(
        "haproxy.cfg.j2",
        {
            "setup": "app",
            "version": 1,
            "ports": [{"port": 8000, "mode": "http"}],
            "servers": [{"name": "v1_1", "ip": "10.0.0.2"}],
            "health": None,
        },
    )
    assert "server v1_1 10.0.0.2:8000 check inter 1s fall 2 rise 1" in cfg and "httpchk" not in cfg


def test_the_watchdog_is_in_the_start_script_only_with_a_health_check() -> None:
    base = {
        "setup": "app",
        "env_replace": None,
        "init_commands": [],
        "start": "./app",
        "start_commands": [],
        "cron": False,
    }
    with_check = render("run.sh.j2", {**base, "health": {"command": "test -f /tmp/ok", "period": 1, "failure": 3}})
    assert "run.healthCheck failed for 3 s: restarting the container" in with_check
    assert "'test -f /tmp/ok'" in with_check and "kill -TERM 1" in with_check
    assert "healthCheck" not in render("run.sh.j2", {**base, "health": None})


def test_the_swarm_service_has_no_gate_without_a_readiness_or_health_check(tmp_path: Path) -> None:
    from typing import Any, cast

    from cri_tasks.targets.swarm import SwarmTarget

    # No readinessCheck, no healthCheck, a TCP port: a started task gets traffic (no TCP gate).
    assert SwarmTarget._health(cast(Any, None), _setup(tmp_path, "")) is None
    readiness = _setup(tmp_path, "    deploy:\n      readinessCheck:\n        exec: {command: test -f /tmp/up}\n")
    health = SwarmTarget._health(cast(Any, None), readiness)
    assert health is not None and "test -f /tmp/up" in health["test"]
