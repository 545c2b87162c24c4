"""Fuzzing the loader: whatever the bytes, only ConfigError may escape load_project/load_data.

Inputs: real zerops.yml files (the shared corpus when present, plus the valid documents below),
mutated by deleting, duplicating and replacing bytes, swapping lines and values, injecting keys
and raw bytes; random YAML-ish text; random bytes; random trees dumped as YAML.

The hypothesis tests are derandomized (same examples on every run) and small; the 10,000
document run is marked ``slow``.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cri_tasks.errors import ConfigError, Problem
from cri_tasks.loader import load_data, load_project


def _corpus_dir() -> Path | None:
    shared = os.environ.get("CRI_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"
    corpus = base / "corpus" / "zerops-yml"
    return corpus if corpus.is_dir() else None


VALID_DOCUMENTS = [
    """\
zerops:
  - setup: api
    build:
      os: ubuntu
      base: gleam@1.5
      prepareCommands:
        - zsc add gleam@1.5
      buildCommands:
        - |
          gleam deps download
          gleam export erlang-shipment
      deployFiles: build/erlang-shipment/~
      addToRunPrepare: [gleam.toml, manifest.toml]
      cache: [build/packages]
      envVariables: {MIX_ENV: prod, N: 1, B: true}
    deploy:
      temporaryShutdown: false
      readinessCheck:
        httpGet: {port: 3000, path: /}
        retryPeriod: 5s
        failureTimeout: 300
    run:
      os: ubuntu
      base: gleam@1.5
      prepareCommands: [sudo apt-get update]
      initCommands:
        - zsc execOnce ${appVersionId} -- sh migrate.sh
      ports:
        - port: 3000
          protocol: TCP
          httpSupport: true
      envVariables:
        DB_HOST: ${db_hostname}
        EMPTY: null
      envReplace: {delimiter: "%%", target: [config/]}
      healthCheck:
        exec: {command: ./check}
        execPeriod: 10s
      crontab:
        - {timing: "* * * * *", command: date, allContainers: false}
      start: ./entrypoint.sh run
  - setup: dev
    extends: api
    run:
      startCommands:
        - command: gleam run
          name: app
          initCommands: [gleam deps download]
      verticalAutoscaling: {minRam: 0.25}
""",
    """\
zerops:
  - setup: base
    build: &build
      base: [nodejs@22, gleam@1]
      buildCommands: [npm ci]
      deployFiles: ./
    run:
      base: static
      routing:
        redirects: [{from: /a, to: /b, status: 301}]
        headers: [{for: /*, values: {X-A: b}}]
  - setup: app
    extends: [base]
    build:
      <<: *build
      buildCommands: [npm run build]
""",
    "api:\n  build:\n    base: [go@1]\n    build: [go build]\n    deploy: [app]\n  run:\n    start: ./app\n",
]


def _seeds() -> list[bytes]:
    corpus = _corpus_dir()
    files = sorted(corpus.glob("*.yml")) if corpus else []
    return [doc.encode() for doc in VALID_DOCUMENTS] + [path.read_bytes() for path in files]


SEEDS = _seeds()

# Building blocks for mutations: YAML syntax, encodings trouble, and values of every kind.
TOKENS = [
    b":",
    b": ",
    b"-",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b"&a ",
    b"*a",
    b"*b",
    b"!!binary ",
    b"!x ",
    b"!!int ",
    b"|",
    b">-",
    b"'",
    b'"',
    b"%",
    b"@",
    b"`",
    b"#",
    b",",
    b"? ",
    b"\t",
    b"\n",
    b"  ",
    b"    ",
    b"\x00",
    b"\x07",
    b"\x1b",
    b"\xff",
    b"\xc3",
    "é".encode(),
    "\u2028".encode(),
    "\U0001f600".encode(),
    b"\r",
    b"\r\n",
    b"<<: *a\n",
    b"---\n",
    b"...\n",
    b"\xef\xbb\xbf",
    b"\\",
    b"~",
]
VALUES = [
    b"yes",
    b"No",
    b"on",
    b"~",
    b"null",
    b"",
    b"0755",
    b"0o17",
    b"0x1F",
    b"1e3",
    b".inf",
    b".NaN",
    b"[1, 2]",
    b"[]",
    b"{}",
    b"{a: 1}",
    b"*a",
    b"&a x",
    b"true",
    b"FALSE",
    b'"30s"',
    b"5m",
    b"1h30m",
    b"-1",
    b"0",
    b"9",
    b"65436",
    b"3000",
    b"3000.0",
    b"udp",
    b"TCP",
    b"gleam@1.5",
    b"static",
    b"ubuntu",
    b"debian",
    b"22:22",
    b"2026-01-02",
    b"!!int x",
    b"!!str 1",
    b"|\n  block\n",
    b"[a, [b, {c: d}]]",
    b"'quoted'",
    b'"\\x41"',
    b"./",
    b"build/erlang-shipment/~",
    b"${db_hostname}",
    b"x" * 300,
    b"9" * 5000,
    b"1" * 400 + b"h",
    b"1e999",
]
KEYS = [
    "zerops",
    "setup",
    "extends",
    "build",
    "run",
    "deploy",
    "base",
    "os",
    "prepareCommands",
    "buildCommands",
    "deployFiles",
    "cache",
    "addToRunPrepare",
    "envVariables",
    "start",
    "startCommands",
    "initCommands",
    "ports",
    "port",
    "protocol",
    "httpSupport",
    "description",
    "envReplace",
    "delimiter",
    "target",
    "healthCheck",
    "httpGet",
    "exec",
    "command",
    "path",
    "readinessCheck",
    "retryPeriod",
    "failureTimeout",
    "crontab",
    "timing",
    "allContainers",
    "verticalAutoscaling",
    "mount",
    "routing",
    "documentRoot",
    "<<",
    "prepare",
    "init",
    "temporaryShutdown",
    "name",
    "workingDir",
    "unknownKey",
    "1",
    "true",
    "",
]

_VALUE_SPOT = re.compile(rb"(?m)(?<=: )[^\n]*$")


def apply_op(data: bytes, op: tuple[Any, ...]) -> bytes:
    """Apply one mutation; positions are fractions so an op fits any document."""
    kind = op[0]
    at = int(op[1] * len(data)) if data else 0
    if kind == "delete":
        return data[:at] + data[at + op[2] :]
    if kind == "duplicate":
        return data[: at + op[2]] + data[at : at + op[2]] + data[at + op[2] :]
    if kind == "replace":
        return data[:at] + op[2] + data[at + 1 :]
    if kind == "insert":
        return data[:at] + op[2] + data[at:]
    lines = data.split(b"\n")
    row = int(op[1] * len(lines)) % len(lines)
    if kind == "swap_lines":
        other = int(op[2] * len(lines)) % len(lines)
        lines[row], lines[other] = lines[other], lines[row]
    elif kind == "inject_key":
        indent, key, value = op[2], op[3], op[4]
        lines.insert(row, b" " * indent + key.encode() + b": " + value)
    elif kind in ("set_value", "swap_values"):
        spots = list(_VALUE_SPOT.finditer(data))
        if not spots:
            return data
        spot = spots[int(op[1] * len(spots)) % len(spots)]
        if kind == "set_value":
            new = op[2]
        else:
            new = spots[int(op[2] * len(spots)) % len(spots)].group()
        return data[: spot.start()] + new + data[spot.end() :]
    return b"\n".join(lines)


# -- hypothesis strategies ---------------------------------------------------------------------

fraction = st.floats(min_value=0, max_value=1, allow_nan=False)
token = st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=4)
ops = st.one_of(
    st.tuples(st.just("delete"), fraction, st.integers(1, 40)),
    st.tuples(st.just("duplicate"), fraction, st.integers(1, 80)),
    st.tuples(st.just("replace"), fraction, token),
    st.tuples(st.just("insert"), fraction, token | st.sampled_from(VALUES)),
    st.tuples(st.just("swap_lines"), fraction, fraction),
    st.tuples(st.just("inject_key"), fraction, st.integers(0, 12), st.sampled_from(KEYS), st.sampled_from(VALUES)),
    st.tuples(st.just("set_value"), fraction, st.sampled_from(VALUES)),
    st.tuples(st.just("swap_values"), fraction, fraction),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.sampled_from([v.decode("utf-8", "replace") for v in VALUES]),
    st.text(max_size=12),
)
trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    max_leaves=25,
)
YAML_ALPHABET = st.sampled_from(list(":-[]{}&*!|>'\"#,? \t\nabcxyz019~.@%`\\") + ["é", "\u2028", "\x85", "\r"])

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "zerops.yml"


def only_config_errors(path: Path, data: bytes) -> bool:
    """Feed ``data`` to both entry points; True when load_project accepted it."""
    path.write_bytes(data)
    try:
        project = load_project(path)
    except ConfigError as error:
        _check_problems(error.problems)
        accepted = False
    else:
        for warning in project.warnings:
            _check_problems((warning,))
        accepted = True
    try:
        load_data(path)
    except ConfigError as error:
        _check_problems(error.problems)
        assert not accepted, "load_project accepted a file load_data refused"
    return accepted


def _check_problems(problems: tuple[Problem, ...]) -> None:
    assert problems
    for problem in problems:
        assert isinstance(problem, Problem) and problem.message
        if problem.location is not None:
            assert problem.location.line >= 1 and problem.location.column >= 1


def _tree_document(tree: Any, wrap: bool) -> bytes:
    document = {"zerops": [tree]} if wrap else tree
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode()


@FUZZ
@given(seed=st.sampled_from(SEEDS), mutations=st.lists(ops, min_size=1, max_size=6))
def test_mutated_real_documents_raise_only_config_errors(
    scratch: Path, seed: bytes, mutations: list[tuple[Any, ...]]
) -> None:
    data = seed
    for op in mutations:
        data = apply_op(data, op)
    only_config_errors(scratch, data)


@FUZZ
@given(tree=trees, wrap=st.booleans(), mutations=st.lists(ops, max_size=3))
def test_random_yaml_trees_raise_only_config_errors(
    scratch: Path, tree: Any, wrap: bool, mutations: list[tuple[Any, ...]]
) -> None:
    data = _tree_document(tree, wrap)
    for op in mutations:
        data = apply_op(data, op)
    only_config_errors(scratch, data)


@FUZZ
@given(text=st.text(alphabet=YAML_ALPHABET, max_size=200))
def test_random_yaml_like_text_raises_only_config_errors(scratch: Path, text: str) -> None:
    only_config_errors(scratch, text.encode())


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_config_errors(scratch: Path, data: bytes) -> None:
    only_config_errors(scratch, data)


def test_the_unmutated_valid_documents_load(scratch: Path) -> None:
    for document in VALID_DOCUMENTS[:2]:
        assert only_config_errors(scratch, document.encode())


# -- the long run --------------------------------------------------------------------------------


def _random_op(rng: random.Random) -> tuple[Any, ...]:
    pick: Callable[[list[Any]], Any] = rng.choice
    kind = pick(["delete", "duplicate", "replace", "insert", "swap_lines", "inject_key", "set_value", "swap_values"])
    where = rng.random()
    if kind in ("delete", "duplicate"):
        return (kind, where, rng.randint(1, 60))
    if kind in ("replace", "insert"):
        payload = pick(TOKENS + VALUES) if rng.random() < 0.8 else rng.randbytes(rng.randint(1, 4))
        return (kind, where, payload)
    if kind in ("swap_lines", "swap_values"):
        return (kind, where, rng.random())
    if kind == "inject_key":
        return (kind, where, rng.randint(0, 12), pick(KEYS), pick(VALUES))
    return (kind, where, pick(VALUES))


def _random_tree(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return rng.choice([None, True, 7, -1.5, "yes", "gleam@1.5", "./", 3000, "30s", "", "x" * rng.randint(0, 9)])
    if roll < 0.6:
        return [_random_tree(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): _random_tree(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _random_document(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.6:
        data = rng.choice(SEEDS)
        for _ in range(rng.randint(0, 6)):
            data = apply_op(data, _random_op(rng))
        return data
    if roll < 0.8:
        data = _tree_document(_random_tree(rng), wrap=rng.random() < 0.7)
        for _ in range(rng.randint(0, 2)):
            data = apply_op(data, _random_op(rng))
        return data
    if roll < 0.9:
        return rng.randbytes(rng.randint(0, 300))
    alphabet = ":-[]{}&*!|>'\"#,? \t\nabcxyz019~.@%`\\é\u2028\r"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))).encode()


@pytest.mark.slow
def test_ten_thousand_generated_documents_raise_only_config_errors(scratch: Path) -> None:
    rng = random.Random(20261129)
    started = time.monotonic()
    accepted = sum(only_config_errors(scratch, _random_document(rng)) for _ in range(10_000))
    assert accepted > 100  # the generator still produces valid files, not only garbage
    assert time.monotonic() - started < 120
