"""This repository's own noxfile: cri-tasks used from Nox the way a user's noxfile would.

    nox -s tests            # the test suite on the installed wheel, in a fresh virtualenv
                            # (arguments after -- go to pytest)
    nox -s example          # validate zerops.yml of examples/hello and prepare its runtime image

Nox runs this file (and every session body) in nox's own interpreter, so ``import cri_tasks.nox``
below needs cri-tasks installed next to nox, not in a session's virtualenv:

    pip install -e '.[nox]'           # a development checkout: nox and cri-tasks in one env
    python -m nox -s example          # ... and run nox from that env
    pipx inject nox cri-tasks         # or: add cri-tasks to a pipx-installed nox

The cri-tasks helpers run in-process, so sessions that only call them need no virtualenv
(``venv_backend="none"``). Their settings come from invoke.yaml in the current directory (the
folder ``session.chdir`` went to), ``~/.invoke.yaml``, ``/etc/invoke.yaml`` and ``INVOKE_CRI_*``
variables; keyword arguments win.
"""

from __future__ import annotations

import sys

import nox

import cri_tasks.nox as cri

nox.needs_version = ">=2026.4.10"
nox.options.sessions = ["tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed wheel (scripts/test; arguments after -- go to pytest)."""
    # scripts/test builds the sdist and the wheel and installs the wheel into the session's
    # environment (nox's own with --no-venv), as users install it, then runs pytest there.
    location = sys.prefix if session.venv_backend == "none" else session.virtualenv.location
    session.run("bash", "scripts/test", *session.posargs, env={"CRI_VENV": location}, external=True)


@nox.session(venv_backend="none")
def example(session: nox.Session) -> None:
    """Validate examples/hello and prepare its custom runtime image."""
    # examples/hello/invoke.yaml maps `ubuntu` to the local Debian image: chdir there, so it is
    # the project config the helpers read (as `invoke prepare` run in that folder would).
    with session.chdir("examples/hello"):
        cri.validate(session)
        for result in cri.prepare(session, setup="app"):
            session.log(f"{result.setup}: runtime image {result.image}")
