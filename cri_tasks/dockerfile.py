"""Dockerfile rendering from the packaged Jinja2 templates (imported only when rendering).

Jinja2 is configured with ``autoescape=False`` (autoescaping would turn ``&&`` into
``&amp;&amp;``) and ``StrictUndefined`` (a missing variable is an error, not an empty string).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CriError
from .paths import folder_stamps

if TYPE_CHECKING:
    import jinja2


TEMPLATE_SUFFIXES = (".j2", ".sh")


def template_dir() -> Traversable:
    """The templates: inside the installed package, or ``templates/`` of a source checkout."""
    packaged = resources.files("cri_tasks") / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=2)
def _environment(directory: str) -> jinja2.Environment:
    """One Jinja2 environment per template folder, so each template compiles once per process
    (parallel setups and a deploy's several Dockerfiles render from the same templates)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["exec_form"] = exec_form
    env.filters["install_script"] = install_script
    env.filters["run_script"] = run_script
    env.filters["shquote"] = shlex.quote
    env.filters["with_build_env"] = with_build_env
    return env


@lru_cache(maxsize=1)
def templates_digest() -> str:
    """sha256 over every template file: a template change invalidates every image."""
    h = hashlib.sha256()
    for entry in sorted(template_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(TEMPLATE_SUFFIXES):
            h.update(entry.name.encode())
            h.update(b"\0")
            h.update(entry.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def templates_stamp() -> str:
    """What the cache-hit key uses instead of :func:`templates_digest`: each template's name, size
    and mtime (a changed template is a new file with a new mtime), without reading them."""
    folder = template_dir()
    if not isinstance(folder, Path):
        return templates_digest()  # templates inside an archive: no stat to go by
    return "\n".join(folder_stamps(str(folder), TEMPLATE_SUFFIXES))


def exec_form(command: str) -> str:
    """A shell command as a Dockerfile exec-form array: ``["/bin/sh", "-c", "<command>"]``.

    JSON escaping keeps newlines, quotes and backslashes inside one physical line that never ends
    with ``\\``; ``<`` is written as ``\\u003c`` so no Dockerfile frontend can read a heredoc
    (``<<EOF``) out of the instruction itself.
    """
    return json.dumps(["/bin/sh", "-c", command]).replace("<", "\\u003c")


def install_script(text: str, path: str) -> str:
    """A RUN instruction body (exec form) that writes ``text`` to ``path`` as an executable.

    The script travels as ``$0`` of the shell, so it needs no quoting and no heredoc."""
    line = json.dumps(["/bin/sh", "-c", f'printf "%s" "$0" > {path} && chmod 0755 {path}', text])
    return line.replace("<", "\\u003c")


def run_script(text: str, name: str, *args: object) -> str:
    """A RUN instruction body (exec form) that runs the shell script ``text`` with ``args``.

    ``sh -c TEXT NAME ARGS...``: the script needs no quoting, no heredoc and no file in the
    build context; its messages name it ``name`` (``$0``)."""
    line = json.dumps(["/bin/sh", "-c", text, name, *(str(a) for a in args)])
    return line.replace("<", "\\u003c")


BUILD_ENV_SECRET = "/run/secrets/cri-build-env"


def with_build_env(command: str) -> str:
    """A build command in exec form that first loads build.envVariables from the BuildKit secret.

    The command travels as ``$0`` and runs in a fresh ``/bin/sh -c``, exactly as written."""
    loader = f'if [ -f {BUILD_ENV_SECRET} ]; then set -a; . {BUILD_ENV_SECRET}; set +a; fi; exec /bin/sh -c "$0"'
    return json.dumps(["/bin/sh", "-c", loader, command]).replace("<", "\\u003c")


#: instructions that BuildKit numbers as steps (``[stage k/n]``); FROM counts unless it names an
#: earlier stage of the same Dockerfile
STEP_INSTRUCTIONS = ("FROM", "RUN", "COPY", "ADD", "WORKDIR")


def steps(dockerfile: str) -> dict[str, list[str]]:
    """The step instructions of each stage, in BuildKit's order (step k is ``[k - 1]``), under the
    stage name BuildKit's headers show: the ``AS`` name, ``stage-<i>`` for an unnamed stage of
    several, ``""`` for a Dockerfile of one unnamed stage. An instruction is its first physical
    line; comments and continuation lines are not steps."""
    stages: list[tuple[str | None, list[str]]] = []
    continued = False
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # inside an instruction too: comments and blank lines do not end it
        if continued:
            continued = line.endswith("\\")
            continue
        continued = line.endswith("\\")
        words = line.split()
        instruction = words[0].upper()
        if instruction == "FROM":
            image_and_name = [word for word in words[1:] if not word.startswith("--")]  # --platform=...
            named = len(image_and_name) >= 3 and image_and_name[1].upper() == "AS"
            name = image_and_name[2].lower() if named else None
            earlier = bool(image_and_name) and image_and_name[0].lower() in {stage for stage, _ in stages if stage}
            stages.append((name, []))
            if earlier:  # FROM an earlier stage is not a step of its own
                continue
        if instruction in STEP_INSTRUCTIONS and stages:
            stages[-1][1].append(line)
    if len(stages) == 1 and stages[0][0] is None:
        return {"": stages[0][1]}
    return {name or f"stage-{index}": lines for index, (name, lines) in enumerate(stages)}


def read_file(name: str) -> str:
    """A non-template file of the template folder (e.g. ``zsc.sh``)."""
    return (template_dir() / name).read_text(encoding="utf-8")


def zsc_script(gleam: Mapping[str, Any] | None) -> str:
    """templates/zsc.sh with what ``zsc install gleam@V`` needs to know: the base aliases
    (``1.5`` means 1.5.1) and, when the image's Gleam comes from the release URL, that URL with
    ``{version}`` left open (a local archive has one version: the one installed)."""
    from .runtimes import GLEAM_VERSIONS, gleam_release_url

    aliases = " ".join(f"{k.split('@', 1)[1]}={v}" for k, v in GLEAM_VERSIONS.items())
    url = gleam_release_url("{version}") if gleam is not None and gleam.get("source") == "release" else ""
    config = f"CRI_GLEAM_ALIASES='{aliases}'\nCRI_GLEAM_URL='{url}'\n"
    return read_file("zsc.sh").replace("# @cri-config@\n", config, 1)


def without_comments(script: str) -> str:
    """A shell script without its whole-line comments: what a RUN step shows in the build log."""
    return "".join(line for line in script.splitlines(keepends=True) if not line.lstrip().startswith("#"))


def erlang_suites() -> list[str]:
    """``OS:codename=suite`` pairs for templates/erlang.sh (:data:`runtimes.NEWER_ERLANG_SUITES`)."""
    from .runtimes import NEWER_ERLANG_SUITES

    return [f"{release}={suite}" for release, suite in NEWER_ERLANG_SUITES.items()]


def render(template: str, context: Mapping[str, Any]) -> str:
    import jinja2

    env = _environment(str(template_dir()))
    full = {
        "zsc_script": zsc_script(context.get("gleam")),
        "erlang_script": without_comments(read_file("erlang.sh")),
        "erlang_suites": erlang_suites(),
        "stage": None,
        **context,
    }
    try:
        return env.get_template(template).render(**full)
    except jinja2.TemplateError as exc:
        raise CriError(f"template {template}: {exc}") from None
