"""Load and validate zerops.yml into :mod:`cri_tasks.model` objects.

Pure: reads one file, touches nothing else. The YAML is composed into a node tree (never
constructed by PyYAML) so that every value keeps the line and column it was written at; the
tree is then checked against small field specs that mirror Zerops' JSON schema, ``extends`` is
applied on the checked values, and the model is built from them.

Every problem found is collected and raised at once as a :class:`~cri_tasks.errors.ConfigError`;
any other exception escaping from here is a bug.

YAML dialect: the YAML 1.2 core schema, like Zerops' Go parser. ``on/off/yes/no/y/n`` are
strings, ``0755`` is the integer 755 (``0o755`` is octal), ``22:22`` and dates are strings,
``1e3`` is a number. PyYAML implements YAML 1.1, so the resolver is replaced below.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .durations import parse_duration
from .errors import ConfigError, Location, Problem
from .errors import suggest as _suggest
from .model import (
    DEFAULT_OS,
    OS_CHOICES,
    Build,
    Command,
    Cron,
    Deploy,
    EnvReplace,
    HealthCheck,
    HttpGet,
    PathRef,
    Port,
    Project,
    ReadinessCheck,
    Run,
    Setup,
    StartCommand,
)
from .paths import CONFIG_NAMES, MAX_FILE_BYTES, path_refusal
from .paths import locate as _locate
from .paths import quoted as _quoted
from .runtimes import DEFAULT_BASE, GLEAM_VERSIONS, base_values, split_base

__all__ = [
    "CONFIG_NAMES",
    "MAX_FILE_BYTES",
    "find_config",
    "load_data",
    "load_project",
    "parse_duration",
]

# Bounds against hostile documents ("billion laughs" aliases, deep nesting). A real zerops.yml
# has a few hundred nodes and at most ~8 levels.
MAX_NODES = 100_000
MAX_DEPTH = 64

# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def find_config(path: str | Path | None, cwd: Path | None = None) -> Path:
    """The zerops.yml to load.

    ``None``: ``zerops.yaml`` then ``zerops.yml`` in ``cwd`` (default: the current directory).
    A directory: the same two names inside it. Anything else is returned as given (resolved
    against ``cwd`` when relative and ``cwd`` is given). Raises ConfigError when nothing is found.
    """
    return _locate(path, cwd)[0]


def load_project(path: str | Path | None = None, *, data: bytes | None = None) -> Project:
    """Load, validate and resolve a zerops.yml (see :func:`find_config` for ``path``).

    ``data``: the file's bytes, already read by the caller (the cache-hit key is made from the
    very bytes parsed here); the same limits apply."""
    real, shown = _locate(path, None)
    root = _parse(real, shown, data)
    ctx = _Context(shown)
    legacy = _legacy_problem(ctx, root)
    if legacy is not None:
        raise ConfigError([legacy])
    entries = _check_root(ctx, root)
    setups = _resolve(ctx, entries)
    if ctx.errors:
        raise ConfigError(ctx.sorted(ctx.errors))
    return Project(file=real.absolute(), setups=tuple(setups), warnings=tuple(ctx.sorted(ctx.warnings)))


def load_data(path: str | Path) -> Any:
    """The YAML document as plain data (dict/list/str/int/float/bool/None), YAML 1.2 rules.

    Mapping keys are always strings (their source text), as in the JSON view a schema sees.
    Raises ConfigError for anything unreadable (bad YAML, duplicate keys, aliases bombs...).
    """
    real, shown = _locate(path, None)
    root = _parse(real, shown)
    ctx = _Context(shown)
    data = _plain(ctx, root, "")
    if ctx.errors:
        raise ConfigError(ctx.sorted(ctx.errors))
    return data


# ---------------------------------------------------------------------------------------------
# Finding and reading the file
# ---------------------------------------------------------------------------------------------


def _read_text(real: Path, shown: str, data: bytes | None = None) -> str:
    if data is not None:
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"{shown}: too large ({len(data)} bytes, limit 1 MiB)")
        return _decode(data, shown)
    message = ""
    try:
        info = real.stat()
    except FileNotFoundError:
        message = f"{shown}: no such file" + (" (broken symbolic link)" if real.is_symlink() else "")
        raise ConfigError(message) from None
    except PermissionError:
        message = f"{shown}: cannot read it: permission denied"
        raise ConfigError(message) from None
    except OSError as exc:
        message = f"{shown}: cannot read it: {exc.strerror or exc}"
        raise ConfigError(message) from None
    if stat.S_ISDIR(info.st_mode):
        message = f"{shown}: is a directory, expected a zerops.yml file"
    elif not stat.S_ISREG(info.st_mode):
        message = f"{shown}: is not a regular file"
    elif info.st_size > MAX_FILE_BYTES:
        message = f"{shown}: too large ({info.st_size} bytes, limit 1 MiB)"
    if message:
        raise ConfigError(message)
    try:
        with real.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        message = f"{shown}: cannot read it: permission denied"
        raise ConfigError(message) from None
    except OSError as exc:
        message = f"{shown}: cannot read it: {exc.strerror or exc}"
        raise ConfigError(message) from None
    if len(data) > MAX_FILE_BYTES:
        message = f"{shown}: too large (more than {MAX_FILE_BYTES} bytes, limit 1 MiB)"
        raise ConfigError(message)
    return _decode(data, shown)


def _decode(data: bytes, shown: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        message = f"{shown}: is UTF-16 encoded; save it as UTF-8"
        raise ConfigError(message)
    nul = data.find(b"\0")
    if nul >= 0:
        before = data[:nul].decode("utf-8", errors="replace")
        line, column = _line_col(before, len(before))
        message = "not a text file (it contains NUL bytes)"
        raise ConfigError([Problem(message, location=Location(shown, line, column))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line, column = _line_col(before, len(before))
        message = f"not a text file (invalid UTF-8 byte 0x{data[exc.start]:02x})"
        raise ConfigError([Problem(message, location=Location(shown, line, column))]) from None
    text = text.removeprefix("\ufeff")
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        # PyYAML would raise a ReaderError without line/column; report it ourselves.
        line, column = _line_col(text, bad.start())
        message = f"unacceptable character U+{ord(bad.group()):04X}: control characters are not allowed in YAML"
        raise ConfigError([Problem(message, location=Location(shown, line, column))])
    return text


# The characters YAML (and both PyYAML readers) accept.
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_BREAKS = re.compile("[\x00\r\n]")


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line/column of ``text[index]``, counting line breaks the way YAML does."""
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line += 1
        start = match.end()
    return line, index - start + 1


# ---------------------------------------------------------------------------------------------
# YAML 1.2 core schema on top of PyYAML
# ---------------------------------------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT, _STR = (f"{_TAG}{name}" for name in ("null", "bool", "int", "float", "str"))
_MAP, _SEQ, _MERGE = f"{_TAG}map", f"{_TAG}seq", f"{_TAG}merge"

_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?(?:\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN)$"
)
_IMPLICIT: list[tuple[str, re.Pattern[str], list[str]]] = [
    (_NULL, _NULL_RE, ["~", "n", "N", ""]),
    (_BOOL, _BOOL_RE, list("tTfF")),
    (_INT, _INT_RE, list("-+0123456789")),
    (_FLOAT, _FLOAT_RE, list("-+.0123456789")),
    # Merge keys are YAML 1.1, but Go's yaml (which Zerops uses) supports them: keep "<<".
    (_MERGE, re.compile(r"^<<$"), ["<"]),
]

# libyaml's marks keep line and column (only the snippet buffer is lost) and it is ~20x faster.
_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader (C when available) whose implicit tags follow the YAML 1.2 core schema."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}


for _tag, _regexp, _first in _IMPLICIT:
    _Loader.add_implicit_resolver(_tag, _regexp, _first)


def _parse(real: Path, shown: str, data: bytes | None = None) -> Node:
    """Read, compose and sanity-check the document; its root node (never None)."""
    text = _read_text(real, shown, data)
    if not text.strip():
        message = f"{shown}: is empty"
        raise ConfigError(message)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_problem(exc, shown)]) from None
    except yaml.YAMLError as exc:  # ReaderError has no mark; _decode catches its causes first
        message = f"{shown}: invalid YAML: {exc}"
        raise ConfigError(message) from None
    except RecursionError:
        message = f"{shown}: nested too deeply"
        raise ConfigError(message) from None
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL and root.value == ""):
        message = f"{shown}: is empty (only comments)"
        raise ConfigError(message)
    _guard(root, shown)
    return root


def _yaml_problem(exc: yaml.MarkedYAMLError, shown: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or "syntax error"
    message = f"invalid YAML: {what}" + (f" ({exc.context})" if exc.context else "")
    location = Location(shown, mark.line + 1, mark.column + 1) if mark is not None else None
    return Problem(message, location=location)


def _guard(root: Node, shown: str) -> None:
    """Refuse alias bombs, recursive aliases and absurd nesting before anything walks the tree.

    Aliases make the node graph a DAG (or a cyclic graph: ``&a [*a]``); the expanded size is
    computed once per node, iteratively, so this costs one pass over the distinct nodes.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    message = ""
    while stack:
        node, finished = stack.pop()
        key = id(node)
        kids = _children(node)
        if finished:
            visiting.discard(key)
            size[key] = 1 + sum(size.get(id(kid), 1) for kid in kids)
            height[key] = 1 + max((height.get(id(kid), 1) for kid in kids), default=0)
            if size[key] > MAX_NODES:
                message = f"the document has more than {MAX_NODES} nodes (aliases expanded); refused"
            elif height[key] > MAX_DEPTH:
                message = f"nested more than {MAX_DEPTH} levels deep; refused"
            if message:
                raise ConfigError([Problem(message, location=_mark_location(node, shown))])
            continue
        if key in size:
            continue
        if key in visiting:
            message = "recursive alias: this node contains itself"
            raise ConfigError([Problem(message, location=_mark_location(node, shown))])
        visiting.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in kids if not isinstance(kid, ScalarNode))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _mark_location(node: Node, shown: str) -> Location:
    return Location(shown, node.start_mark.line + 1, node.start_mark.column + 1)


class _TagError(Exception):
    pass


def _scalar(node: Node) -> tuple[str, Any]:
    """(kind, value) of a scalar: kind is one of null, bool, int, float, str."""
    assert isinstance(node, ScalarNode)
    tag, text = node.tag, node.value
    if tag in (_STR, "!"):
        return "str", text
    # fullmatch: an explicitly tagged quoted scalar may hold a newline that "$" would let through
    if tag == _NULL and _NULL_RE.fullmatch(text):
        return "null", None
    if tag == _BOOL and _BOOL_RE.fullmatch(text):
        return "bool", text.lower() == "true"
    if tag == _INT and _INT_RE.fullmatch(text):
        try:
            return "int", _to_int(text)
        except ValueError:  # Python refuses decimal strings over 4300 digits
            message = f"the integer {_clip(text, 20)} has too many digits"
            raise _TagError(message) from None
    if tag == _FLOAT and _FLOAT_RE.fullmatch(text):
        return "float", _to_float(text)
    if tag == _MERGE:
        return "str", text
    short = tag.replace(_TAG, "!!")
    if tag in (_NULL, _BOOL, _INT, _FLOAT):
        message = f"{_clip(text)!r} is not a valid {short} value"
    else:
        message = f"unsupported YAML tag {short}"
    raise _TagError(message)


def _to_int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # "0755" is 755 in YAML 1.2


def _to_float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


# ---------------------------------------------------------------------------------------------
# Problems and walking the node tree
# ---------------------------------------------------------------------------------------------


class _Invalid:
    """Marks a key that was present but failed validation (so it is not also "missing")."""

    def __repr__(self) -> str:
        return "_INVALID"


_INVALID: Any = _Invalid()


@dataclass(frozen=True)
class _Val:
    """A checked value and where it was written.

    ``value`` is plain data, or ``list[_Val]`` for lists and ``dict[str, _Val]`` for mappings.
    ``key_location`` is where the key of a mapping member was written.
    """

    value: Any
    path: str
    location: Location
    key_location: Location | None = None


class _Context:
    """Collects problems for one file; knows how to place a node."""

    def __init__(self, shown: str) -> None:
        self.file = shown
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self._seen: set[tuple[str, Location | None, str]] = set()

    def loc(self, node: Node) -> Location:
        return _mark_location(node, self.file)

    def error(self, where: Node | Location, path: str, message: str) -> None:
        self._add(self.errors, where, path, message, "error")

    def warn(self, where: Node | Location, path: str, message: str) -> None:
        self._add(self.warnings, where, path, message, "warning")

    def _add(self, into: list[Problem], where: Node | Location, path: str, message: str, severity: str) -> None:
        location = where if isinstance(where, Location) else self.loc(where)
        # An aliased node is walked once per use: report it once.
        key = (severity, location, message)
        if key in self._seen:
            return
        self._seen.add(key)
        into.append(Problem(message, path=path, location=location, severity=severity))

    @staticmethod
    def sorted(problems: Iterable[Problem]) -> list[Problem]:
        def order(problem: Problem) -> tuple[int, int]:
            where = problem.location
            return (where.line, where.column) if where is not None else (0, 0)

        return sorted(problems, key=order)

    def kind(self, node: Node, path: str) -> tuple[str, Any]:
        """(kind, value): kinds mapping, list, null, bool, int, float, str; or invalid (reported)."""
        if isinstance(node, MappingNode):
            if node.tag == _MAP:
                return "mapping", None
            self.error(node, path, f"unsupported YAML tag {node.tag.replace(_TAG, '!!')}")
            return "invalid", None
        if isinstance(node, SequenceNode):
            if node.tag == _SEQ:
                return "list", None
            self.error(node, path, f"unsupported YAML tag {node.tag.replace(_TAG, '!!')}")
            return "invalid", None
        try:
            return _scalar(node)
        except _TagError as exc:
            self.error(node, path, str(exc))
            return "invalid", None

    def items(self, node: Node, path: str) -> list[tuple[str, Node, Node]]:
        """The members of a mapping: keys checked (scalar, unique), ``<<`` merges applied.

        Explicit keys win over merged ones; among several merged mappings the first wins.
        """
        assert isinstance(node, MappingNode)
        explicit: dict[str, tuple[Node, Node]] = {}
        merged: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node, path))
                continue
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, path, "a key must be a plain name, not a mapping or a list")
                continue
            key = key_node.value
            if key in explicit:
                first = explicit[key][0].start_mark
                message = f'duplicate key "{_clip(key)}" (first written at line {first.line + 1})'
                self.error(key_node, path, message)
                continue
            explicit[key] = (key_node, value_node)
        members = [(key, key_node, value_node) for key, (key_node, value_node) in explicit.items()]
        seen = set(explicit)
        for key, key_node, value_node in merged:
            if key not in seen:
                seen.add(key)
                members.append((key, key_node, value_node))
        return members

    def _merge_sources(self, node: Node, path: str) -> list[tuple[str, Node, Node]]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        members: list[tuple[str, Node, Node]] = []
        for source in sources:
            if isinstance(source, MappingNode) and source.tag == _MAP:
                members.extend(self.items(source, path))
            else:
                self.error(source, path, 'a "<<" merge key needs a mapping or a list of mappings')
        return members


def _describe(node: Node) -> str:
    """How a value is shown after "got": ``"http"``, ``the number 3.20``, ``a list``..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    try:
        kind, _ = _scalar(node)
    except _TagError:
        return repr(_clip(node.value))
    if kind == "str":
        return json.dumps(_clip(node.value), ensure_ascii=False)
    if kind == "null":
        return "null"
    if kind == "bool":
        return f"the boolean {node.value}"
    return f"the number {_clip(node.value)}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _child_path(path: str, key: str) -> str:
    name = key if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_\-]*", key) else json.dumps(_clip(key), ensure_ascii=False)
    if not path:
        return name
    return f"{path}.{name}" if not name.startswith('"') else f"{path}[{name}]"


def _plain(ctx: _Context, node: Node, path: str) -> Any:
    """Plain data for :func:`load_data` (depth is bounded by :func:`_guard`)."""
    kind, value = ctx.kind(node, path)
    if kind == "mapping":
        return {key: _plain(ctx, value_node, _child_path(path, key)) for key, _, value_node in ctx.items(node, path)}
    if kind == "list":
        return [_plain(ctx, item, f"{path}[{index}]") for index, item in enumerate(node.value)]
    return value


# ---------------------------------------------------------------------------------------------
# Field specs: a small table-driven checker mirroring Zerops' JSON schema
# ---------------------------------------------------------------------------------------------


class _Spec:
    """Checks one node; returns the plain value, or _INVALID after reporting the problem."""

    expected = "a value"
    takes_text = False  # a number or boolean given instead gets a "quote it" hint

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        raise NotImplementedError

    def wrong(self, ctx: _Context, node: Node, path: str, kind: str) -> Any:
        if kind != "invalid":  # an invalid tag was already reported
            hint = ""
            if self.takes_text and kind in ("int", "float", "bool"):
                hint = f' (quote it: "{_clip(node.value)}")'
            ctx.error(node, path, f"expected {self.expected}, got {_describe(node)}{hint}")
        return _INVALID


def _validate(ctx: _Context, spec: _Spec, node: Node, path: str, anchor: Location | None = None) -> _Val:
    return _Val(spec.check(ctx, node, path, anchor), path, ctx.loc(node))


class _Str(_Spec):
    takes_text = True

    def __init__(self, *, non_empty: bool = False) -> None:
        self.non_empty = non_empty
        self.expected = "a non-empty string" if non_empty else "a string"

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, value = ctx.kind(node, path)
        if kind != "str" or (self.non_empty and not value.strip()):
            return self.wrong(ctx, node, path, kind)
        return value


class _Line(_Str):
    """A string on one line, without control characters (envReplace delimiters)."""

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        value = super().check(ctx, node, path, anchor)
        if value is not _INVALID and _CONTROL.search(value):
            ctx.error(node, path, f"{_quoted(value)} holds a control character (a NUL, a line break...)")
            return _INVALID
        return value


class _Path(_Str):
    """A path in zerops.yml, by the rules of :func:`cri_tasks.paths.path_problem` for ``kind``,
    refused in the words the phases' second walls use (:func:`cri_tasks.paths.path_refusal`)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        value = super().check(ctx, node, path, anchor)
        if value is _INVALID:
            return value
        refusal = path_refusal(value, self.kind)
        if refusal is not None:
            ctx.error(node, path, refusal)
            return _INVALID
        return value


#: Setup names: Zerops' service hostname rule (lowercase ASCII letters and digits, at most 25)
#: plus "-" (a setup picked with ``zcli push --setup`` need not be a hostname); docs/zerops-decisions.md.
SETUP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,24}")
SETUP_NAME_RULE = "1 to 25 lowercase letters a-z, digits or '-', starting with a letter or digit"


class _SetupName(_Str):
    """``setup`` and ``extends`` values: names that are safe as a path component, an image name
    and a container hostname. ``setup`` keeps an invalid value (reported) so that the duplicate
    and case checks still see it; ``extends`` drops it."""

    def __init__(self, *, keep_invalid: bool) -> None:
        super().__init__(non_empty=True)
        self.keep_invalid = keep_invalid

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        value = super().check(ctx, node, path, anchor)
        if value is _INVALID or SETUP_NAME.fullmatch(value):
            return value
        hint = ""
        if SETUP_NAME.fullmatch(value.lower()):
            hint = f' (did you mean "{value.lower()}"?)'
        ctx.error(node, path, f"invalid setup name {_quoted(value)}: use {SETUP_NAME_RULE}{hint}")
        return value if self.keep_invalid else _INVALID


class _Bool(_Spec):
    expected = "true or false"

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, value = ctx.kind(node, path)
        if kind != "bool":
            return self.wrong(ctx, node, path, kind)
        return value


class _Int(_Spec):
    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high
        self.expected = "an integer" if low is None or high is None else f"an integer {low}..{high}"

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, value = ctx.kind(node, path)
        out_of_range = kind == "int" and (
            (self.low is not None and value < self.low) or (self.high is not None and value > self.high)
        )
        if kind != "int" or out_of_range:
            return self.wrong(ctx, node, path, kind)
        return value


class _Enum(_Spec):
    """One of fixed strings; long lists get a "did you mean" instead of the full list."""

    takes_text = True

    def __init__(self, choices: Sequence[str], *, label: str = "", fold_case: bool = False) -> None:
        self.choices = tuple(choices)
        self.label = label
        self.fold_case = fold_case
        self.expected = "one of " + ", ".join(f'"{c}"' for c in self.choices) if not label else f"a {label}"

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, value = ctx.kind(node, path)
        if kind != "str":
            return self.wrong(ctx, node, path, kind)
        wanted = value.lower() if self.fold_case else value
        if wanted in self.choices:
            return wanted
        if not self.label:
            return self.wrong(ctx, node, path, kind)
        message = f'unknown {self.label} "{_clip(value)}"{_suggest(value, self.choices)}'
        ctx.error(node, path, message)
        return _INVALID


class _Duration(_Spec):
    expected = 'a duration: whole seconds or a string like "30s", "5m"'

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, value = ctx.kind(node, path)
        if kind not in ("int", "str"):
            return self.wrong(ctx, node, path, kind)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            ctx.error(node, path, str(exc))
            return _INVALID
        if seconds <= 0:
            ctx.error(node, path, f"a duration must be positive, got {_describe(node)}")
            return _INVALID
        return seconds


class _List(_Spec):
    def __init__(self, item: _Spec, expected: str) -> None:
        self.item = item
        self.expected = expected

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, _ = ctx.kind(node, path)
        if kind != "list":
            return self.wrong(ctx, node, path, kind)
        return [_validate(ctx, self.item, item, f"{path}[{index}]") for index, item in enumerate(node.value)]


class _OneOrList(_Spec):
    """A single string item or a list of them; always checked into a list of _Val."""

    takes_text = True

    def __init__(self, item: _Spec, expected: str) -> None:
        self.item = item
        self.list = _List(item, expected)
        self.expected = expected

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, _ = ctx.kind(node, path)
        if kind == "list":
            return self.list.check(ctx, node, path)
        if kind != "str":
            return self.wrong(ctx, node, path, kind)
        item = self.item.check(ctx, node, path)
        return _INVALID if item is _INVALID else [_Val(item, path, ctx.loc(node))]


class _Cache(_Spec):
    """build.cache: true, false, one path or a list of paths."""

    expected = "true, false, a path or a list of paths"
    takes_text = True
    paths = _OneOrList(_Path("/build/source"), expected)

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, value = ctx.kind(node, path)
        if kind == "bool":
            return value
        if kind in ("str", "list"):
            return self.paths.check(ctx, node, path)
        return self.wrong(ctx, node, path, kind)


class _Env(_Spec):
    """envVariables: names to string/number/boolean values, all turned into strings.

    Numbers keep their source text (``0x10`` stays ``0x10``); booleans become ``true``/``false``;
    null is accepted with a warning as the empty string (Laravel's recipe does that).
    """

    expected = "a mapping of variable names to values"

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, _ = ctx.kind(node, path)
        if kind != "mapping":
            return self.wrong(ctx, node, path, kind)
        out: dict[str, _Val] = {}
        for name, key_node, value_node in ctx.items(node, path):
            here = _child_path(path, name)
            if not name or any(c.isspace() or c == "=" or _CONTROL.match(c) for c in name):
                ctx.error(
                    key_node, path, f'invalid variable name {_quoted(name)} (empty, "=", spaces or control characters)'
                )
                continue
            kind, value = ctx.kind(value_node, here)
            text: Any = _INVALID
            if kind == "str":
                text = value
            elif kind in ("int", "float"):
                text = value_node.value
            elif kind == "bool":
                text = "true" if value else "false"
            elif kind == "null":
                ctx.warn(value_node if value_node.value else key_node, here, "null value, used as an empty string")
                text = ""
            elif kind != "invalid":
                ctx.error(value_node, here, f"expected a string, number or boolean, got {_describe(value_node)}")
            if text is not _INVALID and _BREAKS.search(text):
                # Docker's env file (local), a compose file's env list (swarm) and the build's
                # secret file hold one line per variable; the deploy refused it after the build.
                ctx.error(
                    value_node,
                    here,
                    "a NUL or a line break in a value is not supported (env files carry one variable per line)",
                )
                text = _INVALID
            out[name] = _Val(text, here, ctx.loc(value_node), ctx.loc(key_node))
        return out


class _StrMap(_Spec):
    """A mapping of names to strings (routing.headers[].values)."""

    expected = "a mapping of names to strings"
    value_spec = _Str()

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, _ = ctx.kind(node, path)
        if kind != "mapping":
            return self.wrong(ctx, node, path, kind)
        return {
            name: _validate(ctx, self.value_spec, value_node, _child_path(path, name))
            for name, _, value_node in ctx.items(node, path)
        }


class _Ignored(_Spec):
    """Any value, dropped; still walked so YAML-level problems (duplicate keys, tags) surface."""

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        _plain(ctx, node, path)
        return None


@dataclass(frozen=True)
class _Field:
    spec: _Spec
    required: bool = False
    warning: str = ""  # emitted when the key is present
    ignored: bool = False  # accepted, value dropped


# A rule checks the members of one object as written: (ctx, members, object path, where).
_Rule = Callable[[_Context, Mapping[str, _Val], str, Location], None]


class _Obj(_Spec):
    """A closed mapping: known keys only (unknown ones get a "did you mean")."""

    expected = "a mapping"

    def __init__(self, fields: Mapping[str, _Field | _Spec], *rules: _Rule, expected: str = "a mapping") -> None:
        self.fields = {name: f if isinstance(f, _Field) else _Field(f) for name, f in fields.items()}
        self.rules = rules
        self.expected = expected

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, _ = ctx.kind(node, path)
        if kind != "mapping":
            return self.wrong(ctx, node, path, kind)
        members: dict[str, _Val] = {}
        for key, key_node, value_node in ctx.items(node, path):
            field_ = self.fields.get(key)
            if field_ is None:
                ctx.error(key_node, path, f'unknown key "{_clip(key)}"{_suggest(key, self.fields)}')
                continue
            here = _child_path(path, key)
            if field_.warning:
                ctx.warn(key_node, here, field_.warning)
            if field_.ignored:
                field_.spec.check(ctx, value_node, here)
                continue
            value = _validate(ctx, field_.spec, value_node, here, ctx.loc(key_node))
            members[key] = dataclasses.replace(value, key_location=ctx.loc(key_node))
        where = anchor or ctx.loc(node)
        for name, field_ in self.fields.items():
            if field_.required and name not in members:
                ctx.error(where, path, f'missing required key "{name}"')
        for rule in self.rules:
            rule(ctx, members, path, where)
        return members


def _at_most_one(first: str, second: str) -> _Rule:
    def rule(ctx: _Context, members: Mapping[str, _Val], path: str, where: Location) -> None:
        if first in members and second in members:
            later = max((members[first], members[second]), key=lambda v: _order(v.key_location))
            message = f'"{first}" and "{second}" are mutually exclusive; keep one'
            ctx.error(later.key_location or where, path, message)

    return rule


def _exactly_one(first: str, second: str) -> _Rule:
    both = _at_most_one(first, second)

    def rule(ctx: _Context, members: Mapping[str, _Val], path: str, where: Location) -> None:
        both(ctx, members, path, where)
        if first not in members and second not in members:
            ctx.error(where, path, f'needs one of "{first}" or "{second}"')

    return rule


def _http_needs_tcp(ctx: _Context, members: Mapping[str, _Val], path: str, where: Location) -> None:
    http, protocol = members.get("httpSupport"), members.get("protocol")
    if http is not None and http.value is True and protocol is not None and protocol.value == "udp":
        message = "HTTP support needs protocol tcp, got udp"
        ctx.error(http.key_location or where, _child_path(path, "httpSupport"), message)


def _order(location: Location | None) -> tuple[int, int]:
    return (location.line, location.column) if location is not None else (0, 0)


def _base_os_agrees(ctx: _Context, members: Mapping[str, _Val], path: str, where: Location) -> None:
    """An OS-qualified base (``ubuntu/gleam@1.5``) names the section's OS: it must agree with
    ``os`` and with the other bases of the list."""
    base = members.get("base")
    if base is None or base.value is _INVALID:
        return
    items = base.value if isinstance(base.value, list) else [base]
    os_val = members.get("os")
    first: tuple[str, str] | None = (
        (os_val.value, '"os"') if os_val is not None and isinstance(os_val.value, str) else None
    )
    for item in items:
        if not isinstance(item.value, str):
            continue
        qualified = split_base(item.value)[0]
        if qualified is None:
            continue
        if first is None:
            first = (qualified, f'"{item.value}"')
        elif first[0] != qualified:
            message = f'base "{_clip(item.value)}" runs on {qualified}, but {first[1]} says {first[0]}'
            ctx.error(item.location or where, item.path, message)


def qualified_os(bases: Sequence[str], default: str) -> str:
    """The OS an OS-qualified base names, else ``default`` (``os`` or Zerops' default)."""
    for base in bases:
        qualified = split_base(base)[0]
        if qualified is not None:
            return qualified
    return default


# The accepted bases live in one table, runtimes.BASE_VERSIONS. An unknown base is an error, as it
# is on Zerops.
BUILD_BASES = base_values("build")
RUN_BASES = base_values("run")


class _Base(_Spec):
    """A base value, bare (``gleam@1.5``) or OS-qualified (``ubuntu/gleam@1.5``, since 2026-05)."""

    takes_text = True

    def __init__(self, section: str) -> None:
        self.enum = _Enum(base_values(section), label=f"{section} base")
        self.expected = self.enum.expected

    def check(self, ctx: _Context, node: Node, path: str, anchor: Location | None = None) -> Any:
        kind, value = ctx.kind(node, path)
        if kind != "str":
            return self.wrong(ctx, node, path, kind)
        os_name, bare = split_base(value)
        if os_name is not None and os_name not in OS_CHOICES:
            choices = ", ".join(f'"{c}"' for c in OS_CHOICES)
            ctx.error(node, path, f'unknown OS "{_clip(os_name)}" in base "{_clip(value)}": one of {choices}, then "/"')
            return _INVALID
        plain = ScalarNode(node.tag, bare, node.start_mark, node.end_mark)
        return _INVALID if self.enum.check(ctx, plain, path) is _INVALID else value.strip()


_STRING = _Str()
_COMMANDS = _List(_STRING, "a list of strings")


def _paths(kind: str) -> _OneOrList:
    return _OneOrList(_Path(kind), "a path or a list of paths")


_OS = _Enum(OS_CHOICES)
_ENV = _Env()
_EXEC = _Obj({"command": _Field(_STRING, required=True)})


def _http_get() -> _Obj:
    return _Obj(
        {
            "port": _Field(_Int(1, 65535), required=True),
            "path": _Field(_STRING, required=True),
            "host": _STRING,
            "scheme": _STRING,
        }
    )


_BUILD = _Obj(
    {
        "base": _OneOrList(_Base("build"), "a base or a list of bases"),
        "os": _OS,
        "prepareCommands": _COMMANDS,
        "buildCommands": _COMMANDS,
        "deployFiles": _paths("deployFiles"),
        "deploy": _Field(
            _paths("deployFiles"), warning='deprecated name of "deployFiles"; used as deployFiles, rename it'
        ),
        "cache": _Cache(),
        "addToRunPrepare": _paths("project"),
        "envVariables": _ENV,
    },
    _at_most_one("deployFiles", "deploy"),
    _base_os_agrees,
)

_PORT = _Obj(
    {
        "port": _Field(_Int(10, 65435), required=True),
        "protocol": _Enum(("tcp", "udp"), fold_case=True),
        "httpSupport": _Bool(),
        "description": _STRING,
    },
    _http_needs_tcp,
)

_START_COMMAND = _Obj(
    {
        "command": _Field(_STRING, required=True),
        "name": _STRING,
        "workingDir": _STRING,
        "initCommands": _COMMANDS,
    }
)

_HEALTH_CHECK = _Obj(
    {
        "httpGet": _http_get(),
        "exec": _EXEC,
        "failureTimeout": _Duration(),
        "disconnectTimeout": _Duration(),
        "recoveryTimeout": _Duration(),
        "execPeriod": _Duration(),
    },
    _exactly_one("httpGet", "exec"),
)

_CRON = _Obj(
    {
        "timing": _Field(_STRING, required=True),
        "command": _Field(_STRING, required=True),
        "allContainers": _Field(_Bool(), required=True),
        "workingDir": _STRING,
    }
)

_ROUTING = _Obj(
    {
        "root": _STRING,
        "cors": _STRING,
        "redirects": _List(
            _Obj(
                {
                    "from": _Field(_STRING, required=True),
                    "to": _Field(_STRING, required=True),
                    "status": _Int(),
                    "preservePath": _Bool(),
                    "preserveQuery": _Bool(),
                }
            ),
            "a list of redirects",
        ),
        "headers": _List(
            _Obj({"for": _Field(_STRING, required=True), "values": _Field(_StrMap(), required=True)}),
            "a list of headers",
        ),
    }
)

_NO_LOCAL_MEANING = "has no local meaning (a Zerops {what}); ignored"

_RUN = _Obj(
    {
        "base": _Base("run"),
        "os": _OS,
        "prepareCommands": _COMMANDS,
        "initCommands": _COMMANDS,
        "start": _STRING,
        "startCommands": _List(_START_COMMAND, "a list of start commands"),
        "ports": _List(_PORT, "a list of ports"),
        "envVariables": _ENV,
        "envReplace": _Obj(
            {
                "delimiter": _Field(_OneOrList(_Line(), "a string or a list of strings"), required=True),
                "target": _Field(_paths("/var/www"), required=True),
            }
        ),
        "healthCheck": _HEALTH_CHECK,
        "crontab": _List(_CRON, "a list of cron jobs"),
        "documentRoot": _STRING,
        "siteConfigPath": _STRING,
        "routing": _ROUTING,
        # Seen in official recipes, meaningless on one machine: accepted with a warning.
        "verticalAutoscaling": _Field(
            _Ignored(), warning=_NO_LOCAL_MEANING.format(what="scaling setting"), ignored=True
        ),
        "mount": _Field(_Ignored(), warning=_NO_LOCAL_MEANING.format(what="shared storage mount"), ignored=True),
    },
    _at_most_one("start", "startCommands"),
    _base_os_agrees,
)

_DEPLOY = _Obj(
    {
        "temporaryShutdown": _Bool(),
        "readinessCheck": _Obj(
            {
                "httpGet": _http_get(),
                "exec": _EXEC,
                "retryPeriod": _Duration(),
                "failureTimeout": _Duration(),
            },
            _exactly_one("httpGet", "exec"),
        ),
    }
)

SECTIONS = ("build", "run", "deploy")

_ENTRY = _Obj(
    {
        "setup": _Field(_SetupName(keep_invalid=True), required=True),
        "extends": _OneOrList(_SetupName(keep_invalid=False), "a string or a list of strings"),
        "build": _BUILD,
        "deploy": _DEPLOY,
        "run": _RUN,
    },
    expected='a mapping with "setup"',
)

# Keys that are alternatives: a child setting one drops the other inherited from a parent.
_ALTERNATIVES = {
    ("run", "start"): "startCommands",
    ("run", "startCommands"): "start",
    ("build", "deployFiles"): "deploy",
    ("build", "deploy"): "deployFiles",
}

# ---------------------------------------------------------------------------------------------
# Root, legacy format, extends
# ---------------------------------------------------------------------------------------------

_LEGACY_RENAMES = (
    '"build.prepare" -> "build.prepareCommands", "build.build" -> "build.buildCommands", '
    '"build.deploy" -> "build.deployFiles", "run.prepare" -> "run.prepareCommands", '
    '"run.init" -> "run.initCommands"; "build.base", "build.cache" and "run.start" keep their names'
)


def _legacy_problem(ctx: _Context, root: Node) -> Problem | None:
    """One problem for a pre-2023 file (hostnames as top-level keys), else None."""
    if not isinstance(root, MappingNode):
        return None
    keys = [key for key, _ in root.value if isinstance(key, ScalarNode)]
    if any(key.value == "zerops" for key in keys):
        return None
    hosts = [
        key
        for key, value in root.value
        if isinstance(key, ScalarNode)
        and isinstance(value, MappingNode)
        and any(isinstance(k, ScalarNode) and k.value in SECTIONS for k, _ in value.value)
    ]
    if not hosts:
        return None
    names = ", ".join(_clip(host.value, 30) for host in hosts[:5]) + (", ..." if len(hosts) > 5 else "")
    message = (
        f"this is the pre-2023 zerops.yml format (service hostnames as top-level keys: {names}); "
        'write a "zerops:" list instead, one entry per service starting with "- setup: <hostname>", '
        f"and rename {_LEGACY_RENAMES}"
    )
    return Problem(message, location=ctx.loc(hosts[0]))


@dataclass
class _Entry:
    index: int
    path: str
    location: Location
    members: dict[str, _Val]

    @property
    def name(self) -> str | None:
        setup = self.members.get("setup")
        return setup.value if setup is not None and setup.value is not _INVALID else None

    @property
    def parents(self) -> list[_Val]:
        extends = self.members.get("extends")
        if extends is None or extends.value is _INVALID:
            return []
        return [v for v in extends.value if v.value is not _INVALID]


def _check_root(ctx: _Context, root: Node) -> list[_Entry]:
    kind, _ = ctx.kind(root, "")
    if kind != "mapping":
        if kind != "invalid":
            ctx.error(root, "", f'expected a mapping with the key "zerops", got {_describe(root)}')
        return []
    zerops: Node | None = None
    for key, key_node, value_node in ctx.items(root, ""):
        if key == "zerops":
            zerops = value_node
        else:
            ctx.error(
                key_node, "", f'unknown key "{_clip(key)}"{_suggest(key, ["zerops"])}; the root holds only "zerops"'
            )
    if zerops is None:
        ctx.error(root, "", 'missing required key "zerops" (a list of setups)')
        return []
    kind, _ = ctx.kind(zerops, "zerops")
    if kind != "list":
        if kind != "invalid":
            ctx.error(zerops, "zerops", f"expected a list of setups, got {_describe(zerops)}")
        return []
    if not zerops.value:
        ctx.error(zerops, "zerops", 'the list is empty; add an entry such as "- setup: app"')
    entries: list[_Entry] = []
    for index, node in enumerate(zerops.value):
        path = f"zerops[{index}]"
        members = _ENTRY.check(ctx, node, path)
        if members is not _INVALID:
            entries.append(_Entry(index, path, ctx.loc(node), members))
    return entries


@dataclass(frozen=True)
class _Section:
    """One of build/run/deploy after extends: where its content starts, and its members.

    The content (the mapping under ``run:``), not the key: a problem about the section as a
    whole, such as an unsupported base found later, then points into it.
    """

    location: Location
    members: dict[str, _Val]


def _resolve(ctx: _Context, entries: list[_Entry]) -> list[Setup]:
    by_name: dict[str, _Entry] = {}
    by_folded: dict[str, _Entry] = {}  # image tags and container names are lower-cased
    for entry in entries:
        name = entry.name
        if name is None:
            continue
        setup = entry.members["setup"]
        if name in by_name:
            first = by_name[name].members["setup"].location
            ctx.error(setup.location, setup.path, f"duplicate setup {_quoted(name)} (first defined at {first})")
            continue
        twin = by_folded.get(name.lower())
        if twin is not None:
            other = twin.members["setup"]
            message = (
                f"setup {_quoted(name)} differs only in case from {_quoted(str(twin.name))} "
                f"(defined at {other.location}); setup names are compared without case"
            )
            ctx.error(setup.location, setup.path, message)
            continue
        by_name[name] = entry
        by_folded[name.lower()] = entry
    order = _extends_order(ctx, entries, by_name)
    sections: dict[int, dict[str, _Section]] = {}
    for entry in order:
        layers = [sections[id(by_name[p.value])] for p in entry.parents]
        layers.append(_own_sections(entry))
        sections[id(entry)] = _merge(layers)
    for entry in order:
        _check_merged(ctx, entry, sections[id(entry)])
    if ctx.errors:
        return []
    return [_setup(entry, sections[id(entry)]) for entry in sorted(order, key=lambda e: e.index)]


def _extends_order(ctx: _Context, entries: list[_Entry], by_name: Mapping[str, _Entry]) -> list[_Entry]:
    """Entries whose extends chain is sound, parents before children; reports the rest.

    Iterative depth-first search (a file may chain thousands of setups).
    """
    known = ", ".join(_clip(n, 30) for n in by_name)
    broken: set[int] = set()
    for entry in entries:
        for parent in entry.parents:
            if parent.value not in by_name:
                message = f'unknown setup "{_clip(parent.value)}" in extends{_suggest(parent.value, by_name)}; setups in this file: {known}'
                ctx.error(parent.location, parent.path, message)
                broken.add(id(entry))
    done: dict[int, bool] = {}  # id -> sound
    order: list[_Entry] = []
    reported: set[frozenset[int]] = set()
    for start in entries:
        if id(start) in done:
            continue
        path: list[_Entry] = [start]
        on_path = {id(start)}
        pending: list[list[_Val]] = [list(start.parents)]
        while path:
            if pending[-1]:
                edge = pending[-1].pop(0)
                up = by_name.get(edge.value)
                if up is None or id(up) in done:
                    continue
                if id(up) in on_path:
                    cycle = path[[id(e) for e in path].index(id(up)) :]
                    members = frozenset(id(e) for e in cycle)
                    if members not in reported:
                        reported.add(members)
                        chain = " -> ".join(str(e.name) for e in [*cycle, up])
                        ctx.error(edge.location, edge.path, f"extends cycle: {chain}")
                    broken.update(members)
                    continue
                path.append(up)
                on_path.add(id(up))
                pending.append(list(up.parents))
                continue
            entry = path.pop()
            pending.pop()
            on_path.discard(id(entry))
            sound = id(entry) not in broken and all(done.get(id(by_name[p.value]), False) for p in entry.parents)
            done[id(entry)] = sound
            if sound:
                order.append(entry)
    return order


def _own_sections(entry: _Entry) -> dict[str, _Section]:
    own: dict[str, _Section] = {}
    for name in SECTIONS:
        value = entry.members.get(name)
        if value is not None and value.value is not _INVALID:
            own[name] = _Section(value.location, dict(value.value))
    return own


def _merge(layers: Sequence[Mapping[str, _Section]]) -> dict[str, _Section]:
    """Later layers win key by key inside each section (one level deep)."""
    merged: dict[str, _Section] = {}
    for layer in layers:
        for name, section in layer.items():
            previous = merged.get(name)
            if previous is None:
                merged[name] = section
                continue
            members = dict(previous.members)
            for key, value in section.members.items():
                alternative = _ALTERNATIVES.get((name, key))
                if alternative is not None:
                    members.pop(alternative, None)
                members[key] = value
            merged[name] = _Section(section.location, members)
    return merged


def _check_merged(ctx: _Context, entry: _Entry, sections: Mapping[str, _Section]) -> None:
    """Rules on the effective setup (after extends) that a single object cannot state."""
    own_build = entry.members.get("build")
    build = sections.get("build")
    if (
        own_build is not None
        and own_build.value is not _INVALID
        and build is not None
        and not {"deployFiles", "deploy"} & build.members.keys()
    ):
        where = own_build.key_location or own_build.location
        ctx.error(where, f"{entry.path}.build", 'missing required key "deployFiles"')
    run = sections.get("run")
    if run is None or "base" not in run.members:
        _warn_assumed_base(ctx, entry, run, build)


def _warn_assumed_base(ctx: _Context, entry: _Entry, run: _Section | None, build: _Section | None) -> None:
    """No run.base: Zerops keeps the service's current runtime, which a file cannot tell; say
    which runtime cri-tasks renders instead of choosing one silently."""
    os_val = run.members.get("os") if run is not None else None
    os_name = os_val.value if os_val is not None and isinstance(os_val.value, str) else DEFAULT_OS
    message = f"no run.base: Zerops keeps the service's current runtime; cri-tasks assumes {DEFAULT_BASE} (Gleam {GLEAM_VERSIONS[DEFAULT_BASE]}) on {os_name}"
    base = build.members.get("base") if build is not None else None
    if base is not None and isinstance(base.value, list):
        names = [item.value for item in base.value if isinstance(item.value, str)]
        if names and not any(split_base(n)[1].startswith("gleam@") for n in names):
            message += f", although build.base is {', '.join(names)}"
    where = run.location if run is not None else entry.location
    ctx.warn(where, f"{entry.path}.run", message)


# ---------------------------------------------------------------------------------------------
# Building the model (only called when no error was found)
# ---------------------------------------------------------------------------------------------


def _setup(entry: _Entry, sections: Mapping[str, _Section]) -> Setup:
    build, run, deploy = (sections.get(name) for name in SECTIONS)
    return Setup(
        name=str(entry.name),
        index=entry.index,
        run=_run(run) if run is not None else Run(),
        deploy=_deploy(deploy.members) if deploy is not None else Deploy(),
        build=_build(build) if build is not None else None,
        extends=tuple(p.value for p in entry.parents),
        location=entry.location,
    )


def _commands(value: _Val | None) -> tuple[Command, ...]:
    return tuple(_command(item) for item in value.value) if value is not None else ()


def _command(value: _Val) -> Command:
    return Command(value.value, value.path, value.location)


def _path_refs(value: _Val | None) -> tuple[PathRef, ...]:
    return tuple(PathRef(item.value, item.path, item.location) for item in value.value) if value is not None else ()


def _get(members: Mapping[str, _Val], key: str, default: Any = None) -> Any:
    value = members.get(key)
    return value.value if value is not None else default


def _env(members: Mapping[str, _Val]) -> dict[str, str]:
    return {name: value.value for name, value in _get(members, "envVariables", {}).items()}


def _plain_value(value: _Val) -> Any:
    if isinstance(value.value, dict):
        return {key: _plain_value(item) for key, item in value.value.items()}
    if isinstance(value.value, list):
        return [_plain_value(item) for item in value.value]
    return value.value


def _build(section: _Section) -> Build:
    m = section.members
    cache = _get(m, "cache", False)
    bases = tuple(item.value for item in _get(m, "base", []))
    return Build(
        base=bases,
        os=_get(m, "os") or qualified_os(bases, DEFAULT_OS),
        prepare_commands=_commands(m.get("prepareCommands")),
        build_commands=_commands(m.get("buildCommands")),
        deploy_files=_path_refs(m.get("deployFiles") or m.get("deploy")),
        cache=cache if isinstance(cache, bool) else _path_refs(m["cache"]),
        add_to_run_prepare=_path_refs(m.get("addToRunPrepare")),
        env_variables=_env(m),
        location=section.location,
        field_locations=_field_locations(m),
    )


def _field_locations(members: Mapping[str, _Val]) -> dict[str, Location]:
    """Where each key's value (and each envVariables entry) was written."""
    out = {key: value.location for key, value in members.items()}
    env = members.get("envVariables")
    if env is not None and isinstance(env.value, dict):
        out.update({f"envVariables.{name}": item.location for name, item in env.value.items()})
    return out


def _run(section: _Section) -> Run:
    m = section.members
    start = m.get("start")
    env_replace = _get(m, "envReplace")
    routing = m.get("routing")
    return Run(
        base=_get(m, "base"),
        os=_get(m, "os") or qualified_os([_get(m, "base") or ""], DEFAULT_OS),
        prepare_commands=_commands(m.get("prepareCommands")),
        init_commands=_commands(m.get("initCommands")),
        start=_command(start) if start is not None else None,
        start_commands=tuple(_start_command(item.value) for item in _get(m, "startCommands", [])),
        ports=tuple(_port(item) for item in _get(m, "ports", [])),
        env_variables=_env(m),
        env_replace=(
            EnvReplace(
                delimiters=tuple(item.value for item in env_replace["delimiter"].value),
                targets=_path_refs(env_replace["target"]),
            )
            if env_replace is not None
            else None
        ),
        health_check=_health_check(_get(m, "healthCheck")),
        crontab=tuple(_cron(item.value) for item in _get(m, "crontab", [])),
        document_root=_get(m, "documentRoot"),
        site_config_path=_get(m, "siteConfigPath"),
        routing=_plain_value(routing) if routing is not None else None,
        location=section.location,
        field_locations=_field_locations(m),
    )


def _start_command(m: Mapping[str, _Val]) -> StartCommand:
    return StartCommand(
        command=_command(m["command"]),
        name=_get(m, "name"),
        working_dir=_get(m, "workingDir"),
        init_commands=_commands(m.get("initCommands")),
    )


def _port(item: _Val) -> Port:
    m = item.value
    return Port(
        port=_get(m, "port"),
        protocol=_get(m, "protocol", "tcp"),
        http_support=_get(m, "httpSupport", False),
        description=_get(m, "description"),
        location=item.location,
    )


def _cron(m: Mapping[str, _Val]) -> Cron:
    return Cron(
        timing=_get(m, "timing"),
        command=_command(m["command"]),
        all_containers=_get(m, "allContainers"),
        working_dir=_get(m, "workingDir"),
    )


def _http(m: Mapping[str, _Val] | None) -> HttpGet | None:
    if m is None:
        return None
    return HttpGet(port=_get(m, "port"), path=_get(m, "path"), host=_get(m, "host"), scheme=_get(m, "scheme"))


def _exec(m: Mapping[str, _Val] | None) -> Command | None:
    return _command(m["command"]) if m is not None else None


def _health_check(m: Mapping[str, _Val] | None) -> HealthCheck | None:
    if m is None:
        return None
    return HealthCheck(
        http_get=_http(_get(m, "httpGet")),
        exec=_exec(_get(m, "exec")),
        failure_timeout=_get(m, "failureTimeout"),
        disconnect_timeout=_get(m, "disconnectTimeout"),
        recovery_timeout=_get(m, "recoveryTimeout"),
        exec_period=_get(m, "execPeriod"),
    )


def _deploy(m: Mapping[str, _Val]) -> Deploy:
    readiness = _get(m, "readinessCheck")
    check = None
    if readiness is not None:
        check = ReadinessCheck(
            http_get=_http(_get(readiness, "httpGet")),
            exec=_exec(_get(readiness, "exec")),
            retry_period=_get(readiness, "retryPeriod", 5.0),
            failure_timeout=_get(readiness, "failureTimeout", 300.0),
        )
    return Deploy(temporary_shutdown=_get(m, "temporaryShutdown", False), readiness_check=check)
