"""Differential test: the loader and Zerops' published JSON schema agree on valid/invalid.

The schema sees the document through :func:`load_data` (YAML 1.2, like Zerops' Go parser), the
loader through :func:`load_project` (accepting = no error; warnings allowed). Where they may
disagree, it is a deliberate decision listed in ``DISAGREEMENTS`` below, each a named predicate
on the document's data with a minimal example. Two more cases never reach the schema:

* YAML-level problems (duplicate keys, alias bombs, unsupported tags, bad syntax): load_data
  refuses the file itself, so load_project must refuse it too; the schema cannot see them (a
  JSON view keeps the last duplicate key silently).
* YAML 1.1 vs 1.2 booleans (``yes``/``on``): the schema is fed 1.2 data, so both agree; with
  PyYAML's 1.1 ``safe_load`` they would not (see the test at the end).

Legacy pre-2023 files agree (both refuse: the schema lacks "zerops", the loader explains).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cri_tasks import loader
from cri_tasks.errors import ConfigError
from cri_tasks.loader import SETUP_NAME, load_data, load_project
from cri_tasks.paths import path_problem

try:
    from jsonschema import Draft202012Validator
except ImportError:  # pragma: no cover - jsonschema is a test dependency
    Draft202012Validator = None


def _shared_corpus() -> Path | None:
    shared = os.environ.get("CRI_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"
    corpus = base / "corpus"
    return corpus if (corpus / "zerops-yml-schema.json").is_file() else None


CORPUS = _shared_corpus()
SCHEMA: dict[str, Any] = json.loads((CORPUS / "zerops-yml-schema.json").read_text()) if CORPUS else {}

pytestmark = pytest.mark.skipif(
    CORPUS is None or Draft202012Validator is None,
    reason="zerops-yml-schema.json not found (put shared/ beside the project or set CRI_SHARED_DIR), or no jsonschema",
)

# --------------------------------------------------------------------------------------------
# Walking plain data safely (the data may have any shape)
# --------------------------------------------------------------------------------------------


def _entries(data: Any) -> list[dict[str, Any]]:
    zerops = data.get("zerops") if isinstance(data, dict) else None
    return [e for e in zerops if isinstance(e, dict)] if isinstance(zerops, list) else []


def _section(entry: dict[str, Any], name: str) -> dict[str, Any]:
    value = entry.get(name)
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checks(data: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """("readinessCheck"|"healthCheck", the check mapping) of every entry."""
    for entry in _entries(data):
        for kind, holder in (("readinessCheck", _section(entry, "deploy")), ("healthCheck", _section(entry, "run"))):
            check = holder.get(kind)
            if isinstance(check, dict):
                yield kind, check


DURATIONS = {
    "readinessCheck": ("retryPeriod", "failureTimeout"),
    "healthCheck": ("failureTimeout", "disconnectTimeout", "recoveryTimeout", "execPeriod"),
}


def _durations(data: Any) -> Iterator[Any]:
    for kind, check in _checks(data):
        yield from (check[key] for key in DURATIONS[kind] if key in check)


def _ports(data: Any) -> Iterator[dict[str, Any]]:
    for entry in _entries(data):
        yield from _dicts(_section(entry, "run").get("ports"))


def _http_gets(data: Any) -> Iterator[dict[str, Any]]:
    for _, check in _checks(data):
        if isinstance(check.get("httpGet"), dict):
            yield check["httpGet"]


def _setup_names(data: Any) -> list[str]:
    return [e["setup"] for e in _entries(data) if isinstance(e.get("setup"), str) and e["setup"].strip()]


def _parents(entry: dict[str, Any]) -> list[str]:
    extends = entry.get("extends")
    if isinstance(extends, str):
        return [extends]
    return [p for p in extends if isinstance(p, str)] if isinstance(extends, list) else []


# --------------------------------------------------------------------------------------------
# The deliberate disagreements
# --------------------------------------------------------------------------------------------

# -- the loader refuses, the schema accepts: rules the schema cannot state -------------------


def extends_unknown_parent(data: Any) -> bool:
    """extends names a setup that is not in the file (the schema only checks it is a string)."""
    names = set(_setup_names(data))
    return any(parent not in names for entry in _entries(data) for parent in _parents(entry))


def extends_cycle(data: Any) -> bool:
    """extends chains that loop back (a -> b -> a, or a setup extending itself)."""
    graph: dict[str, list[str]] = {}
    for entry in _entries(data):
        if isinstance(entry.get("setup"), str):
            graph.setdefault(entry["setup"], _parents(entry))

    def loops(start: str) -> bool:
        seen, todo = set(), list(graph.get(start, []))
        while todo:
            name = todo.pop()
            if name == start:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, []))
        return False

    return any(loops(name) for name in graph)


def duplicate_setup(data: Any) -> bool:
    """Two entries with the same setup name: selecting one would be ambiguous."""
    names = _setup_names(data)
    return len(names) != len(set(names))


def empty_setup_name(data: Any) -> bool:
    """setup: "" (or blanks): a setup is selected by name, an empty one cannot be."""
    return any(isinstance(e.get("setup"), str) and not e["setup"].strip() for e in _entries(data))


def empty_zerops_list(data: Any) -> bool:
    """zerops: []: a file with nothing to build is a mistake, not a valid no-op."""
    return isinstance(data, dict) and data.get("zerops") == []


def start_with_start_commands(data: Any) -> bool:
    """run.start and run.startCommands together (the reference: mutually exclusive)."""
    return any({"start", "startCommands"} <= _section(e, "run").keys() for e in _entries(data))


def deploy_files_with_deprecated_deploy(data: Any) -> bool:
    """build.deployFiles and the deprecated build.deploy together: which one wins is a guess."""
    return any({"deployFiles", "deploy"} <= _section(e, "build").keys() for e in _entries(data))


def probe_not_exactly_one(data: Any) -> bool:
    """readinessCheck/healthCheck with both httpGet and exec, or neither (reference: exactly one)."""
    return any(len({"httpGet", "exec"} & check.keys()) != 1 for _, check in _checks(data))


def port_out_of_range(data: Any) -> bool:
    """ports[].port outside 10..65435 (Zerops reserves the rest), httpGet.port outside 1..65535."""
    ranges = [(p.get("port"), 10, 65435) for p in _ports(data)] + [(h.get("port"), 1, 65535) for h in _http_gets(data)]
    return any(_is_int(port) and not low <= port <= high for port, low, high in ranges)


def http_support_over_udp(data: Any) -> bool:
    """httpSupport: true with protocol udp (the schema's own description: TCP only)."""
    return any(p.get("httpSupport") is True and str(p.get("protocol", "")).lower() == "udp" for p in _ports(data))


def non_positive_duration(data: Any) -> bool:
    """A check timing of 0 or less seconds (the schema only says integer)."""
    return any(_is_int(value) and value <= 0 for value in _durations(data))


def integral_float_for_integer(data: Any) -> bool:
    """3000.0 where an integer is expected: jsonschema counts it as an integer, YAML says float."""
    values = [p.get("port") for p in _ports(data)] + [h.get("port") for h in _http_gets(data)]
    values += list(_durations(data))
    for entry in _entries(data):
        routing = _section(entry, "run").get("routing")
        if isinstance(routing, dict):
            values += [r.get("status") for r in _dicts(routing.get("redirects"))]
    return any(isinstance(value, float) and value.is_integer() for value in values)


def unusable_env_name(data: Any) -> bool:
    """An environment variable name that is empty or holds "=", whitespace or a control character."""
    for entry in _entries(data):
        for name in ("build", "run"):
            env = _section(entry, name).get("envVariables")
            if isinstance(env, dict) and any(
                not k or "=" in k or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in k) for k in env
            ):
                return True
    return False


def unsafe_setup_name(data: Any) -> bool:
    """A setup (or extends) name outside Zerops' hostname rule plus "-" (docs/zerops-decisions.md):
    it becomes a folder under the cache, an image name and a container hostname."""
    names = [e.get("setup") for e in _entries(data)] + [p for e in _entries(data) for p in _parents(e)]
    return any(isinstance(n, str) and n.strip() and not SETUP_NAME.fullmatch(n) for n in names)


_PATH_FIELDS = (
    ("build", "deployFiles", "deployFiles"),
    ("build", "deploy", "deployFiles"),
    ("build", "addToRunPrepare", "project"),
    ("build", "cache", "/build/source"),
)


def _path_values(data: Any) -> Iterator[tuple[str, Any]]:
    """(kind, value) of every path written in the document."""
    for entry in _entries(data):
        fields = [(kind, _section(entry, section).get(key)) for section, key, kind in _PATH_FIELDS]
        env_replace = _section(entry, "run").get("envReplace")
        if isinstance(env_replace, dict):
            fields.append(("/var/www", env_replace.get("target")))
        for kind, value in fields:
            yield from ((kind, v) for v in (value if isinstance(value, list) else [value]))


def unusable_path(data: Any) -> bool:
    """A path that is empty, escapes its folder ("..", absolute; deployFiles "/" and "/~" excepted)
    or holds a control character: the build or the deploy would refuse it later."""
    return any(isinstance(value, str) and path_problem(value, kind) for kind, value in _path_values(data))


def line_break_in_value(data: Any) -> bool:
    """An env value with a NUL or a line break (Docker passes one line per variable), or an
    envReplace delimiter with a control character."""
    for entry in _entries(data):
        for name in ("build", "run"):
            env = _section(entry, name).get("envVariables")
            if isinstance(env, dict) and any(
                isinstance(v, str) and any(c in v for c in "\0\r\n") for v in env.values()
            ):
                return True
        env_replace = _section(entry, "run").get("envReplace")
        delimiters = env_replace.get("delimiter") if isinstance(env_replace, dict) else None
        for d in delimiters if isinstance(delimiters, list) else [delimiters]:
            if isinstance(d, str) and any(ord(c) < 32 or c == "\x7f" for c in d):
                return True
    return False


# -- the loader accepts (with a warning or by design), the schema refuses ------------------------


def no_local_meaning_keys(data: Any) -> bool:
    """run.verticalAutoscaling / run.mount: seen in official recipes, warned about and ignored."""
    return any({"verticalAutoscaling", "mount"} & _section(e, "run").keys() for e in _entries(data))


def null_env_value(data: Any) -> bool:
    """envVariables with a null value: warned about, used as "" (Laravel's recipe does it)."""
    for entry in _entries(data):
        for name in ("build", "run"):
            env = _section(entry, name).get("envVariables")
            if isinstance(env, dict) and any(value is None for value in env.values()):
                return True
    return False


def deprecated_build_deploy(data: Any) -> bool:
    """build.deploy (old name of deployFiles): warned about and used as deployFiles."""
    return any("deploy" in _section(e, "build") for e in _entries(data))


def inherited_deploy_files(data: Any) -> bool:
    """A child's build without deployFiles takes it from the setup it extends."""
    return any(
        _parents(e) and "build" in e and not {"deployFiles", "deploy"} & _section(e, "build").keys()
        for e in _entries(data)
    )


def duration_string(data: Any) -> bool:
    """Go-style durations ("30s", "5m") for check timings; the schema wants integers."""
    return any(isinstance(value, str) for value in _durations(data))


def protocol_in_any_case(data: Any) -> bool:
    """protocol TCP/Udp: the reference says any case, the schema's enum is lower case."""
    return any(
        isinstance(p.get("protocol"), str)
        and p["protocol"] not in ("tcp", "udp")
        and p["protocol"].lower() in ("tcp", "udp")
        for p in _ports(data)
    )


@dataclass(frozen=True)
class Disagreement:
    predicate: Callable[[Any], bool]
    loader_accepts: bool  # True: the loader accepts what the schema refuses; False: the reverse
    example: str  # a minimal zerops.yml showing it

    @property
    def name(self) -> str:
        return self.predicate.__name__


_APP = "zerops:\n  - setup: app\n"
DISAGREEMENTS = [
    Disagreement(extends_unknown_parent, False, _APP + "    extends: nope\n"),
    Disagreement(extends_cycle, False, _APP + "    extends: app\n"),
    Disagreement(duplicate_setup, False, _APP + "  - setup: app\n"),
    Disagreement(empty_setup_name, False, "zerops:\n  - setup: ''\n"),
    Disagreement(empty_zerops_list, False, "zerops: []\n"),
    Disagreement(start_with_start_commands, False, _APP + "    run: {start: a, startCommands: [{command: b}]}\n"),
    Disagreement(deploy_files_with_deprecated_deploy, False, _APP + "    build: {deployFiles: a, deploy: b}\n"),
    Disagreement(probe_not_exactly_one, False, _APP + "    deploy: {readinessCheck: {retryPeriod: 5}}\n"),
    Disagreement(port_out_of_range, False, _APP + "    run: {ports: [{port: 65436}]}\n"),
    Disagreement(
        http_support_over_udp, False, _APP + "    run: {ports: [{port: 53, protocol: udp, httpSupport: true}]}\n"
    ),
    Disagreement(non_positive_duration, False, _APP + "    run: {healthCheck: {exec: {command: x}, execPeriod: 0}}\n"),
    Disagreement(integral_float_for_integer, False, _APP + "    run: {ports: [{port: 3000.0}]}\n"),
    Disagreement(unusable_env_name, False, _APP + "    run: {envVariables: {'A B': x}}\n"),
    Disagreement(unsafe_setup_name, False, "zerops:\n  - setup: ../x\n"),
    Disagreement(unusable_path, False, _APP + "    build: {deployFiles: ../x}\n"),
    Disagreement(line_break_in_value, False, _APP + '    run: {envVariables: {A: "x\\ny"}}\n'),
    Disagreement(no_local_meaning_keys, True, _APP + "    run: {verticalAutoscaling: {minRam: 1}, mount: [s]}\n"),
    Disagreement(null_env_value, True, _APP + "    run: {envVariables: {A: null}}\n"),
    Disagreement(deprecated_build_deploy, True, _APP + "    build: {deploy: ./}\n"),
    Disagreement(
        inherited_deploy_files,
        True,
        "zerops:\n  - setup: a\n    build: {deployFiles: ./}\n  - setup: b\n    extends: a\n    build: {os: ubuntu}\n",
    ),
    Disagreement(duration_string, True, _APP + "    deploy: {readinessCheck: {exec: {command: x}, retryPeriod: 5s}}\n"),
    Disagreement(protocol_in_any_case, True, _APP + "    run: {ports: [{port: 80, protocol: TCP}]}\n"),
]

# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------


def _validator() -> Any:
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = Draft202012Validator(SCHEMA)
    return _VALIDATOR


_VALIDATOR: Any = None


@dataclass
class Verdicts:
    loader_accepts: bool
    schema_accepts: bool | None  # None: load_data refused the YAML itself
    loader_says: str
    schema_says: str
    data: Any = None


def judge(path: Path) -> Verdicts:
    try:
        load_project(path)
        loader_accepts, loader_says = True, ""
    except ConfigError as error:
        loader_accepts, loader_says = False, str(error)
    try:
        data = load_data(path)
    except ConfigError as error:
        return Verdicts(loader_accepts, None, loader_says, f"(YAML refused: {error})")
    errors = sorted(_validator().iter_errors(data), key=lambda e: repr(list(e.absolute_path)))
    schema_says = "\n".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors)
    return Verdicts(loader_accepts, not errors, loader_says, schema_says, data)


def excuses(verdicts: Verdicts) -> list[str]:
    """Names of the documented disagreements that explain a difference (empty when they agree)."""
    if verdicts.schema_accepts is None or verdicts.loader_accepts == verdicts.schema_accepts:
        return []
    return [d.name for d in DISAGREEMENTS if d.loader_accepts == verdicts.loader_accepts and d.predicate(verdicts.data)]


def assert_agree_or_excused(path: Path) -> Verdicts:
    verdicts = judge(path)
    if verdicts.schema_accepts is None:
        # A YAML-level problem: the schema never sees the file; the loader must refuse it.
        assert not verdicts.loader_accepts, verdicts.schema_says
    elif verdicts.loader_accepts != verdicts.schema_accepts:
        assert excuses(verdicts), (
            f"undocumented disagreement: loader {'accepts' if verdicts.loader_accepts else 'refuses'}, "
            f"schema {'accepts' if verdicts.schema_accepts else 'refuses'}\n--- document\n{path.read_text()}"
            f"\n--- loader\n{verdicts.loader_says}\n--- schema\n{verdicts.schema_says}"
        )
    return verdicts


# --------------------------------------------------------------------------------------------
# Corpus and documented examples
# --------------------------------------------------------------------------------------------

CORPUS_FILES = sorted((CORPUS / "zerops-yml").glob("*.yml")) if CORPUS else []


@pytest.mark.parametrize("path", CORPUS_FILES or [None], ids=[p.name for p in CORPUS_FILES] or ["no-corpus"])
def test_the_loader_and_the_schema_agree_on_the_corpus_file(path: Path) -> None:
    assert_agree_or_excused(path)


def test_on_the_corpus_only_the_three_documented_files_disagree() -> None:
    verdicts = {path.name: judge(path) for path in CORPUS_FILES}
    schema_ok = {name for name, v in verdicts.items() if v.schema_accepts}
    loader_ok = {name for name, v in verdicts.items() if v.loader_accepts}
    assert len(schema_ok) == 16  # as the corpus README states
    assert schema_ok < loader_ok
    assert {name: excuses(verdicts[name]) for name in loader_ok - schema_ok} == {
        "zeropsio__recipe-python-hello-world__zerops.yml": ["deprecated_build_deploy"],
        "zeropsio__recipe-laravel-minimal__zerops.yml": ["null_env_value"],
        "zerops-recipe-apps__nodejs-hello-world-app__zerops.yaml.yml": ["no_local_meaning_keys"],
    }


@pytest.mark.parametrize("disagreement", DISAGREEMENTS, ids=[d.name for d in DISAGREEMENTS])
def test_each_documented_disagreement_is_real_and_recognised(tmp_path: Path, disagreement: Disagreement) -> None:
    path = tmp_path / "zerops.yml"
    path.write_text(disagreement.example)
    verdicts = judge(path)
    assert verdicts.loader_accepts is disagreement.loader_accepts, verdicts.loader_says
    assert verdicts.schema_accepts is (not disagreement.loader_accepts), verdicts.schema_says
    assert excuses(verdicts) == [disagreement.name]


def test_the_schema_sees_yaml_1_2_data_so_yes_and_on_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "zerops.yml"
    path.write_text("zerops:\n  - setup: yes\n    run:\n      start: on\n")
    validator = _validator()
    assert validator.is_valid(load_data(path))
    load_project(path)
    # PyYAML's YAML 1.1 view turns both into booleans: the schema would refuse the file.
    assert not validator.is_valid(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    "text",
    [
        "zerops:\n  - setup: a\n    setup: b\n",  # duplicate key: a JSON view would keep "b"
        "zerops: &z [*z]\n",  # recursive alias
        "zerops:\n  - setup: !!binary YQ==\n",  # a tag the loader does not support
        "zerops:\n  - {setup: a\n",  # syntax
    ],
)
def test_yaml_level_problems_never_reach_the_schema_and_the_loader_refuses_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "zerops.yml"
    path.write_text(text)
    verdicts = assert_agree_or_excused(path)
    assert verdicts.schema_accepts is None


# --------------------------------------------------------------------------------------------
# Generated documents: built from the schema's own shape
# --------------------------------------------------------------------------------------------

STRINGS = [
    "app",
    "./",
    "dist",
    "build/erlang-shipment/~",
    "npm ci",
    "yes",
    "on",
    "0755",
    "1e3",
    "22:22",
    "30s",
    "${db_hostname}",
    "é",
    "x y",
    "",
    "/status",
    "%%",
    "*/5 * * * *",
]
ENV_NAMES = ["A", "DB_HOST", "PORT", "mix_env", "X1"]
SETUP_NAMES = ["app", "api", "base", "dev", "prod"]


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for values valid against one schema node (the subset the schema uses)."""
    if "oneOf" in node:
        return st.one_of([from_schema(alternative) for alternative in node["oneOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object" and "properties" not in node:  # a map: envVariables, header values
        return st.dictionaries(st.sampled_from(ENV_NAMES), from_schema(node["additionalProperties"]), max_size=3)
    if kind == "object":
        properties = node["properties"]
        required = {key: from_schema(properties[key]) for key in node.get("required", [])}
        optional = {
            key: from_schema(value)
            for key, value in properties.items()
            if key not in required and not value.get("deprecated")
        }
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "array":
        return st.lists(from_schema(node["items"]), max_size=2)
    if kind == "string":
        return st.sampled_from(STRINGS)
    if kind == "integer":
        return st.integers(10, 65435)
    if kind == "number":
        return st.integers(-5, 70000) | st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    raise AssertionError(f"schema construct not handled: {node}")


ENTRY = from_schema(SCHEMA["properties"]["zerops"]["items"]) if SCHEMA else st.just({})


def _usable_paths(entry: dict[str, Any]) -> None:
    """Replace the generated paths the loader refuses (empty, absolute) by "./"."""
    holders = [(_section(entry, "build"), key, kind) for _, key, kind in _PATH_FIELDS]
    env_replace = _section(entry, "run").get("envReplace")
    if isinstance(env_replace, dict):
        holders.append((env_replace, "target", "/var/www"))
    for holder, key, kind in holders:
        value = holder.get(key)
        if isinstance(value, str) and path_problem(value, kind):
            holder[key] = "./"
        elif isinstance(value, list):
            holder[key] = ["./" if isinstance(v, str) and path_problem(v, kind) else v for v in value]


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Schema-valid documents, adjusted to the loader's extra rules so both should accept them."""
    entries = draw(st.lists(ENTRY, min_size=1, max_size=3))
    names = draw(st.lists(st.sampled_from(SETUP_NAMES), min_size=len(entries), max_size=len(entries), unique=True))
    for index, entry in enumerate(entries):
        entry["setup"] = names[index]
        if "extends" in entry:
            if index == 0:
                del entry["extends"]
            else:  # only earlier setups: no cycles
                earlier = st.sampled_from(names[:index])
                entry["extends"] = draw(earlier | st.lists(earlier, min_size=1, max_size=2))
        run = entry.get("run", {})
        _usable_paths(entry)
        if "start" in run and "startCommands" in run:
            del run[draw(st.sampled_from(["start", "startCommands"]))]
        for port in run.get("ports", []):
            if port.get("protocol") == "udp":
                port.pop("httpSupport", None)
        for holder, key in ((run, "healthCheck"), (entry.get("deploy", {}), "readinessCheck")):
            check = holder.get(key)
            if check is None:
                continue
            probes = [p for p in ("httpGet", "exec") if p in check]
            if not probes:
                del holder[key]
            elif len(probes) == 2:
                del check[draw(st.sampled_from(probes))]
    return {"zerops": entries}


MUTANT_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    5,
    9,
    70000,
    3000.0,
    1.5,
    "yes",
    "TCP",
    "udp",
    "30s",
    "5x",
    "",
    "gleam@1.5",
    "static",
    "ubuntu",
    [],
    {},
    ["x"],
    {"k": "v"},
    [{"port": 80}],
    {"httpGet": {"port": 80, "path": "/"}},
    {"command": "x"},
]
MUTANT_KEYS = [
    "verticalAutoscaling",
    "mount",
    "deploy",
    "deployFiles",
    "start",
    "startCommands",
    "extends",
    "setup",
    "exec",
    "httpGet",
    "bogus",
    "Start",
    "protocol",
    "port",
    "retryPeriod",
    "prepareCommand",
]


def _spots(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in the document, for picking where to mutate."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in list(items):
        out.append((value, key))
        _spots(child, out)
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with exactly one mutation: a value replaced, a key removed or added."""
    document = copy.deepcopy(draw(valid_documents()))
    spots = _spots(document, [])
    container, key = draw(st.sampled_from(spots))
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        container[key] = copy.deepcopy(draw(st.sampled_from(MUTANT_VALUES)))
    elif action == "remove":
        del container[key]
    else:
        target = container if isinstance(container, dict) else container[key]
        if isinstance(target, dict):
            target[draw(st.sampled_from(MUTANT_KEYS))] = copy.deepcopy(draw(st.sampled_from(MUTANT_VALUES)))
        elif isinstance(target, list):
            target.append(copy.deepcopy(draw(st.sampled_from(MUTANT_VALUES))))
    return document


class _Yaml12Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.2 would read as something else ("1e3", "0o7").

    PyYAML decides quoting with its 1.1 rules and would write "1e3" plain; the loader's own
    1.2 resolver table is reused so that a generated string stays a string.
    """

    yaml_implicit_resolvers: dict[str, Any] = {}


for _tag, _regexp, _first in loader._IMPLICIT:
    _Yaml12Dumper.add_implicit_resolver(_tag, _regexp, _first)


def _write(path: Path, document: Any) -> None:
    path.write_text(yaml.dump(document, Dumper=_Yaml12Dumper, allow_unicode=True, sort_keys=False))


DIFF = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("schema") / "zerops.yml"


@DIFF
@given(document=valid_documents())
def test_generated_valid_documents_pass_both(scratch: Path, document: dict[str, Any]) -> None:
    _write(scratch, document)
    verdicts = judge(scratch)
    assert verdicts.schema_accepts, verdicts.schema_says
    assert verdicts.loader_accepts, verdicts.loader_says


@DIFF
@given(document=mutated_documents())
def test_generated_documents_with_one_mutation_get_the_same_verdict(scratch: Path, document: dict[str, Any]) -> None:
    _write(scratch, document)
    assert_agree_or_excused(scratch)
