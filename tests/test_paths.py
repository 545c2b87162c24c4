"""paths.component, the one door through which a name enters a path, and a check that every
module that builds a path from a name goes through it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cri_tasks.errors import CriError
from cri_tasks.paths import MAX_COMPONENT, component, path_problem

PACKAGE = Path(__file__).resolve().parent.parent / "cri_tasks"

HOSTILE = {
    "../x": "only ASCII letters",
    "/abs": "only ASCII letters",
    "a/b": "only ASCII letters",
    ".": "names a folder",
    "..": "names a folder",
    "a\0b": "only ASCII letters",
    "a\nb": "only ASCII letters",
    "x" * 300: "300 characters",
    "-rf": "not first '.' or '-'",
    ".hidden": "not first '.' or '-'",
    "": "it is empty",
    "a b": "only ASCII letters",
    "a\\b": "only ASCII letters",
    "\uff0e\uff0e": "only ASCII letters",  # fullwidth full stops: look like ".."
    "a\u2215b": "only ASCII letters",  # division slash: looks like "a/b"
    "\u0430pp": "only ASCII letters",  # Cyrillic a: looks like "app"
    "app\u200b": "only ASCII letters",  # zero-width space
}


@pytest.mark.parametrize("name", list(HOSTILE), ids=[repr(n[:12]) for n in HOSTILE])
def test_a_hostile_name_is_refused_with_what_it_is_and_why(name: str) -> None:
    with pytest.raises(CriError) as caught:
        component(name, "setup name")
    message = str(caught.value)
    assert message.startswith("refusing to use the setup name ")
    assert HOSTILE[name] in message
    assert "\n" not in message and "\0" not in message  # the name is shown escaped
    assert caught.value.status == "INVALID_CONFIG"


@pytest.mark.parametrize(
    "name",
    ["app", "api-2", "prepare-20261201T101010.123456Z-42.log", "x" * MAX_COMPONENT, "deploy-app.lock", "App_1", "0"],
)
def test_a_safe_component_comes_back_unchanged(name: str) -> None:
    assert component(name, "name") == name


def test_a_name_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(CriError, match="expected a string, got int"):
        component(12, "setup name")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "kind", "why"),
    [
        ("/", "deployFiles", None),
        ("/~", "deployFiles", None),
        ("./", "deployFiles", None),
        ("dist/~", "deployFiles", None),
        ("/dist", "deployFiles", "is absolute"),
        ("~/x", "deployFiles", "is absolute"),
        ("a/../../x", "deployFiles", "leaves the project folder"),
        ("a/~b/~c", "deployFiles", "more than one '~'"),
        ("", "deployFiles", "is empty"),
        ("dist/*.js", "deployFiles", "glob character"),  # looked up literally: never found after the build
        ("build/app?", "deployFiles", "glob character"),
        ("gleam.toml", "project", None),
        ("/etc/passwd", "project", "is absolute"),
        ("~/.ssh", "project", "is absolute"),
        ("../x", "project", "leaves the project folder"),
        ("a\0b", "project", "control character"),
        ("a\nb", "/build/source", "control character"),
        ("deps", "/build/source", None),
        ("/root", "/build/source", "must stay inside /build/source"),
        ("../etc/passwd", "/var/www", "must stay inside /var/www"),
        ("config/app.conf", "/var/www", None),
    ],
)
def test_the_path_rules_of_each_kind(value: str, kind: str, why: str | None) -> None:
    got = path_problem(value, kind)
    assert (got is None) if why is None else (got is not None and why in got), got


# -- every name joined into a path goes through component() ------------------------------------

#: Divisions whose right side is neither a literal, a constant nor a component() call, each with
#: the reason it is not a name: (module, source of the right side).
NOT_NAMES = {
    # a relative path found by fingerprint.scan under checked addToRunPrepare refs
    ("runtime_build.py", "entry.rel"),
    # zerops.yml paths (the loader's path_problem rule), looked up in the project
    ("preflight.py", "r.value.strip()"),
    ("preflight.py", "dp.source"),
    # the fixed names of a build folder's leftovers (build_phase.LEFTOVERS), swept in folders
    # found on disk
    ("build_phase.py", "leftover"),
    # numbers
    ("targets/swarm.py", "self.parallelism"),
    ("targets/swarm.py", "max(interval, 0.001)"),
}
#: Modules that join paths written in zerops.yml or the settings, not names: each checks them
#: with its own rule (paths.path_problem, fingerprint.check_inside, artifact.parse_deploy_path).
PATH_MODULES = {"artifact.py", "fingerprint.py", "paths.py", "settings.py", "dockerfile.py"}


def _is_component_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "component"


def _joins(tree: ast.AST) -> list[ast.expr]:
    """The right side of every ``a / b`` and the arguments of every ``os.path.join``/``joinpath``."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found.append(node.right)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("join", "joinpath", "with_name")
        ):
            owner = ast.unparse(node.func.value)
            if node.func.attr != "join" or owner == "os.path":
                found.extend(node.args[1:] if node.func.attr == "join" else node.args)
    return found


def _checked_locals(tree: ast.AST) -> set[str]:
    """Variables assigned the result of a component() call (``name = component(...)``)."""
    return {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_component_call(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _safe_part(node: ast.expr, checked: frozenset[str] | set[str]) -> bool:
    """A piece that cannot carry a name: a literal, a constant, a checked local, a pid, a number."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)):
        return True
    if isinstance(node, ast.Name):
        return node.id.isupper() or node.id in checked
    if isinstance(node, ast.Attribute):
        return node.attr.isupper()  # a module constant (diskcache.core.DBNAME)
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.getpid", "int"):
        return True
    return _is_component_call(node)


def _unchecked(module: str, right: ast.expr, checked: frozenset[str] | set[str] = frozenset()) -> bool:
    if _safe_part(right, checked):
        return False
    if isinstance(right, ast.JoinedStr) and all(
        isinstance(part, ast.Constant) or (isinstance(part, ast.FormattedValue) and _safe_part(part.value, checked))
        for part in right.values
    ):
        return False
    return (module, ast.unparse(right)) not in NOT_NAMES


def test_every_path_made_from_a_name_goes_through_component() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in PATH_MODULES:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        checked = _checked_locals(tree)
        for right in _joins(tree):
            if _unchecked(module, right, checked):
                offenders.append(f"{module}:{right.lineno}: {ast.unparse(right)}")
    assert offenders == [], "join these through paths.component(name, what):\n" + "\n".join(offenders)


def test_the_check_catches_a_name_joined_without_component() -> None:
    bad = ast.parse(
        'work = cache_dir / "build" / setup.name\nlog = d / f"{phase}-{stamp}.log"\nother = setup.name\nx = d / other\n'
    )
    good = ast.parse(
        'work = cache_dir / "build" / component(setup.name, "setup name")\n'
        "log = d / f\"{component(phase, 'phase')}-{os.getpid()}.log\"\n"
        'name = component(setup.name, "setup name")\nx = d / name\n'
    )
    unchecked = [ast.unparse(r) for r in _joins(bad) if _unchecked("x.py", r, _checked_locals(bad))]
    assert unchecked == ["setup.name", "f'{phase}-{stamp}.log'", "other"]
    assert [r for r in _joins(good) if _unchecked("x.py", r, _checked_locals(good))] == []


def test_every_module_that_names_a_cache_path_is_checked() -> None:
    # The modules the issue names: none of them may be skipped as a "path module".
    named = {
        "build_phase.py",
        "logfiles.py",
        "locks.py",
        "runtime_build.py",
        "deploy_phase.py",
        "hitindex.py",
        "store.py",
        "targets/local.py",
        "targets/swarm.py",
    }
    assert all((PACKAGE / m).is_file() for m in named)
    assert not named & PATH_MODULES
