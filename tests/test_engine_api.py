"""How engine.image_ids reaches the engine: its API on the local socket, or the docker CLI.

A fake engine on a unix socket answers here; test_engine.py asks the real one."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_tasks import engine


class FakeEngine:
    """What the fake engine answers (``answers[target] = (status, body)``) and what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.seen: list[str] = []


@pytest.fixture
def fake_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEngine]:
    """A unix socket answering GET /images/<ref>/json from a table (HTTP/1.0, then close)."""
    fake = FakeEngine()
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536).decode()
                target = request.split(" ")[1]
                fake.seen.append(target)
                status, body = fake.answers.get(target, (404, b'{"message":"no such image"}'))
                conn.sendall(f"HTTP/1.0 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    yield fake
    server.close()


def test_ids_come_from_the_api_and_a_missing_image_is_none(
    fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "_inspect", lambda refs: pytest.fail("the CLI was asked"))
    fake_engine.answers["/images/cri/app:abc/json"] = (200, json.dumps({"Id": "sha256:1"}).encode())
    fake_engine.answers["/images/base@sha256:ff/json"] = (200, json.dumps({"Id": "sha256:2"}).encode())
    got = engine.image_ids(["cri/app:abc", "base@sha256:ff", "gone:1"])
    assert got == {"cri/app:abc": "sha256:1", "base@sha256:ff": "sha256:2", "gone:1": None}
    assert fake_engine.seen == ["/images/cri/app:abc/json", "/images/base@sha256:ff/json", "/images/gone:1/json"]


@pytest.mark.parametrize("answer", [(500, b'{"message":"boom"}'), (200, b"not json"), (200, b'{"NoId": 1}')])
def test_an_answer_it_cannot_read_goes_to_the_cli(
    fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, answer: tuple[int, bytes]
) -> None:
    fake_engine.answers["/images/x:1/json"] = answer
    asked: list[list[str]] = []
    monkeypatch.setattr(engine, "_inspect", lambda refs: asked.append(refs) or ["sha256:cli"])
    assert engine.image_ids(["x:1"]) == {"x:1": "sha256:cli"}
    assert asked == [["x:1"]]


def test_a_socket_that_does_not_answer_goes_to_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    monkeypatch.setattr(engine, "_inspect", lambda refs: ["sha256:cli"])
    assert engine.image_ids(["x:1"]) == {"x:1": "sha256:cli"}


@pytest.mark.parametrize(
    "env, config, expected",
    [
        ({}, None, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, None, "/run/user/1000/docker.sock"),
        ({"DOCKER_HOST": "tcp://10.0.0.5:2376"}, None, None),
        ({"DOCKER_HOST": "ssh://me@host"}, None, None),
        ({"DOCKER_CONTEXT": "remote"}, None, None),
        ({"DOCKER_CONTEXT": "default"}, {"currentContext": "remote"}, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix:///a.sock", "DOCKER_CONTEXT": "x"}, None, None),
        ({}, {"currentContext": "rootless"}, None),
        ({}, {"currentContext": "default"}, "/var/run/docker.sock"),
        ({}, "not json {", "/var/run/docker.sock"),
    ],
)
def test_the_socket_is_used_only_where_the_cli_would_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict, config: object, expected: str | None
) -> None:
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    if config is not None:
        (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    assert engine._local_socket() == expected


def test_an_engine_that_accepts_and_never_answers_gets_the_cli_after_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    path = tmp_path / "hung.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)  # connections queue up and are never answered
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.setattr(engine, "API_TIMEOUT", 0.3)
    monkeypatch.setattr(engine, "_inspect", lambda refs: ["sha256:cli"] * len(refs))
    start = time.monotonic()
    try:
        assert engine.image_ids(["a:1", "b:1", "c:1"]) == {
            "a:1": "sha256:cli",
            "b:1": "sha256:cli",
            "c:1": "sha256:cli",
        }
    finally:
        server.close()
    assert time.monotonic() - start < 1.0  # one deadline for all three, not one each
