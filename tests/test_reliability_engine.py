"""Faults and hostile input against the real engine: interrupts, a vanishing engine, a full disk,
many processes at once, and secrets that must never be written anywhere."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import buildx_processes, invoke, make_project, only, prepare_json, start_invoke, tmpfs, wait_for_log

pytestmark = pytest.mark.engine

SLOW = """
zerops:
  - setup: app
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo {marker}
        - echo "step-$(id -un)" && sleep {seconds}
"""


@pytest.fixture
def slow_project(tmp_path: Path, engine_settings: dict[str, Any], unique: str) -> Path:
    return make_project(tmp_path / "p", SLOW.format(marker=unique, seconds=30), settings=engine_settings)


def test_ctrl_c_stops_the_build_records_nothing_and_leaves_no_builder(
    slow_project: Path, engine_settings: dict[str, Any]
) -> None:
    cache = Path(str(engine_settings["cache_dir"]))
    proc = start_invoke(slow_project, "prepare")
    wait_for_log(slow_project, cache, "step-zerops")
    repo = str(engine_settings["repository"])
    assert buildx_processes(repo), "the build should be running"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "interrupted" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while buildx_processes(repo) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert buildx_processes(repo) == []
    assert only(prepare_json(slow_project, "--explain"))["reasons"] == [
        "no runtime image was prepared for this setup yet (or it was cleared)"
    ]


def test_a_prepare_killed_half_way_leaves_no_record_and_the_next_run_builds(
    slow_project: Path, engine_settings: dict[str, Any]
) -> None:
    cache = Path(str(engine_settings["cache_dir"]))
    proc = start_invoke(slow_project, "prepare")
    wait_for_log(slow_project, cache, "step-zerops")
    proc.kill()
    proc.communicate()
    # The orphaned buildx may still finish and even tag its image: without a record it is not
    # taken as good.
    explained = only(prepare_json(slow_project, "--explain"))
    assert explained["status"] == "would build"
    text = (slow_project / "zerops.yml").read_text().replace("sleep 30", "sleep 1")
    (slow_project / "zerops.yml").write_text(text)
    entry = only(prepare_json(slow_project))
    assert entry["status"] == "built"
    assert only(prepare_json(slow_project))["status"] == "up to date"


class Relay:
    """A unix-socket relay in front of the Docker engine that can be cut: the engine 'goes away'."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.conns: list[socket.socket] = []
        self.alive = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.alive:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> None:
        self.alive = False
        self.server.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


def test_an_engine_that_goes_away_during_a_build_is_a_clear_error_and_records_stay(
    tmp_path: Path, slow_project: Path, engine_settings: dict[str, Any]
) -> None:
    # a good image first, so there is a record to keep
    text = (slow_project / "zerops.yml").read_text()
    (slow_project / "zerops.yml").write_text(text.replace("sleep 30", "sleep 0"))
    good = only(prepare_json(slow_project))
    (slow_project / "zerops.yml").write_text(text)
    relay = Relay(tmp_path / "docker.sock")
    cache = Path(str(engine_settings["cache_dir"]))
    earlier = set((cache / "logs").rglob("prepare-*.log"))
    proc = start_invoke(slow_project, "prepare", env={"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"})
    wait_for_log(slow_project, cache, "step-zerops", since=earlier)  # the slow step is running
    relay.cut()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert "[app] 2/2 echo" in err  # it was cut mid-build, not before
    assert "the Docker engine" in err and "PREPARING_RUNTIME_FAILED" not in err, err
    # the earlier record is intact: going back to it is a hit
    (slow_project / "zerops.yml").write_text(text.replace("sleep 30", "sleep 0"))
    again = only(prepare_json(slow_project))
    assert again["status"] == "up to date" and again["image_id"] == good["image_id"]


def test_an_unreachable_engine_is_named_without_a_traceback(slow_project: Path, tmp_path: Path) -> None:
    proc = invoke(slow_project, "prepare", env={"DOCKER_HOST": f"unix://{tmp_path / 'nothing.sock'}"})
    assert proc.returncode == 1
    assert "the Docker engine is not reachable" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny", "400k") as mount:
        yield mount


def test_a_full_disk_while_writing_the_log_is_a_clear_error_and_nothing_is_recorded(
    tmp_path: Path, engine_settings: dict[str, Any], tiny_disk: Path
) -> None:
    settings = {**engine_settings, "cache_dir": str(tiny_disk / "cache")}
    noise = "head -c 90000 /dev/zero | tr '\\\\0' 'x' | fold -w 100"  # BuildKit clips ~100 KiB per step
    loud = SLOW.format(marker="loud", seconds=0).replace(
        'echo "step-$(id -un)" && sleep 0', "\n        - ".join([noise] * 8)
    )
    proj = make_project(tmp_path / "p", loud, settings=settings)
    proc = invoke(proj, "prepare")
    assert proc.returncode == 1
    assert "cannot write the log" in proc.stderr and "No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert buildx_processes(str(engine_settings["repository"])) == []
    # the incomplete log and the staged context were removed: nobody has to clear the disk by hand
    assert list((tiny_disk / "cache" / "logs").rglob("*.log")) == []
    assert list((tiny_disk / "cache" / "context").iterdir()) == []
    explained = only(prepare_json(proj, "--explain"))
    assert explained["status"] == "would build"


def test_eight_concurrent_prepares_build_once_and_agree(slow_project: Path) -> None:
    text = (slow_project / "zerops.yml").read_text().replace("sleep 30", "sleep 2")
    (slow_project / "zerops.yml").write_text(text)
    procs = [start_invoke(slow_project, "prepare", "--json") for _ in range(8)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1][-500:] for o in outs]
    entries = [only(json.loads(o[0])) for o in outs]
    assert sorted(e["status"] for e in entries) == ["built"] + ["up to date"] * 7
    assert len({e["image_id"] for e in entries}) == 1


def test_concurrent_deploys_of_one_setup_one_wins_the_others_fail_fast(app: Path) -> None:
    (app / "project.env").write_text("")
    procs = [start_invoke(app, "deploy", "--json") for _ in range(8)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0] + [1] * 7, [o[1][-400:] for o in outs]
    losers = [o[1] for p, o in zip(procs, outs, strict=True) if p.returncode == 1]
    assert all("another deploy of app is running" in e and "Traceback" not in e for e in losers)


def test_secrets_reach_containers_at_run_time_only(app: Path, engine_settings: dict[str, Any], unique: str) -> None:
    secret = f"s3cr3t-{unique}"
    (app / "project.env").write_text(f"API_TOKEN={secret}\n")
    text = (app / "zerops.yml").read_text()
    text = text.replace(
        "      envVariables:\n        GREETING: hello\n",
        "      envVariables:\n        GREETING: hello\n        TOKEN: ${API_TOKEN}\n",
    )
    text = text.replace(
        "      deployFiles: build/erlang-shipment/~\n",
        "      deployFiles: build/erlang-shipment/~\n      envVariables:\n        BUILD_TOKEN: ${API_TOKEN}\n",
    )
    text = text.replace(
        "        - cp entrypoint.sh build/erlang-shipment/\n",
        '        - cp entrypoint.sh build/erlang-shipment/\n        - test -n "$BUILD_TOKEN"\n',
    )
    (app / "zerops.yml").write_text(text)
    proc = invoke(app, "deploy", "--json")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["setups"]
    container = entry["containers"][0]
    env = subprocess.run(["docker", "exec", container, "env"], capture_output=True, text=True, check=True).stdout
    assert f"TOKEN={secret}" in env  # it did reach the running container
    assert (
        subprocess.run(["docker", "exec", container, "id", "-un"], capture_output=True, text=True).stdout.strip()
        == "zerops"
    )
    for image in (entry["image"], entry["runtime_image"]):
        history = subprocess.run(
            ["docker", "history", "--no-trunc", image], capture_output=True, text=True, check=True
        ).stdout
        assert secret not in history
        inspect = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, text=True, check=True
        ).stdout
        assert secret not in inspect
        saved = subprocess.run(["docker", "save", image], capture_output=True, check=True).stdout
        assert secret.encode() not in saved
    cache = Path(str(engine_settings["cache_dir"]))
    for path in cache.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in proc.stdout + proc.stderr
    logs = invoke(app, "logs", "--setup", "app")
    assert secret not in logs.stdout
    # no pickles in the record database
    db = sqlite3.connect(cache / "records" / "cache.db")
    assert db.execute("SELECT COUNT(*) FROM Cache WHERE mode = 4").fetchone() == (0,)
    db.close()
    # the proxy runs with every capability dropped but binding ports
    proxy = [
        n
        for n in subprocess.run(
            ["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True
        ).stdout.split()
        if n.startswith("cri-hello-") and n.endswith("-proxy")
    ][0]
    caps = json.loads(
        subprocess.run(
            ["docker", "inspect", "--format", "{{json .HostConfig}}", proxy], capture_output=True, text=True
        ).stdout
    )
    assert caps["CapDrop"] == ["ALL"] and caps["CapAdd"] in (["NET_BIND_SERVICE"], ["CAP_NET_BIND_SERVICE"])


def test_an_engine_that_goes_away_during_a_deploy_leaves_the_active_version_serving(app: Path, tmp_path: Path) -> None:
    from helpers import get

    first = invoke(app, "deploy", "--json")
    assert first.returncode == 0, first.stderr
    url = json.loads(first.stdout)["setups"][0]["urls"][0]
    source = app / "src" / "hello.erl"
    source.write_text(source.read_text().replace("version 1", "version 2"))
    relay = Relay(tmp_path / "docker.sock")
    proc = start_invoke(app, "deploy", env={"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # cut the engine off once version 2's container exists
        names = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
        if "-app-v2-" in names:
            break
        time.sleep(0.05)
    relay.cut()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in err and "not reachable" in err
    assert get(url).startswith("Hello from the BEAM, version 1")
    status = json.loads(invoke(app, "status", "--json").stdout)["setups"][0]
    assert status["active_version"] == 1
    # the next deploy (engine back) takes over cleanly, leftovers included
    again = invoke(app, "deploy", "--json")
    assert again.returncode == 0, again.stderr
    assert get(url).startswith("Hello from the BEAM, version 2")
