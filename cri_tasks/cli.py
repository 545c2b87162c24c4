"""The ``cri`` program: the cri-tasks collection as a standalone command, no tasks.py needed.

``cri prepare --setup app``, ``cri validate``, ``cri --list``, ``cri --help prepare``,
``cri --version``; shell completion with ``cri --print-completion-script bash``.

It reads the same configuration as ``invoke`` does for a tasks.py in the current directory
(:class:`~cri_tasks.config.CriConfig`): ``invoke.yaml`` there, ``~/.invoke.yaml``,
``/etc/invoke.yaml``, ``INVOKE_CRI_*`` variables, ``--config FILE`` / ``INVOKE_RUNTIME_CONFIG``. A
Program with a config class prefixed ``cri`` would read ``cri.yaml`` and ``CRI_*`` instead, and a
project would need two config files for the same settings.

Its core options are only those that mean something for ``cri``: Invoke's options for
``c.run()`` (``--dry``, ``--echo``, ``--hide``, ``--pty``...) would be accepted and do nothing,
since no task runs a shell command through Invoke, and ``-f`` is the zerops.yml here, as in every
task, not Invoke's runtime configuration file (that one is ``--config``, which must exist).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from invoke import Argument, Program

from ._version import __version__
from .config import CriConfig
from .errors import ConfigError, CriError
from .tasks import COMMON_HELP, SHORT_FLAGS, collection, print_error_document

__all__ = ["CriProgram", "main", "program"]

#: Invoke's core options that ``cri`` keeps (the rest configure ``c.run()``, which no task uses).
KEPT_CORE = ("complete", "help", "list", "list-format", "print-completion-script", "version")

#: What Invoke's own Program code reads of the options ``cri`` drops, with their "not given" values.
DROPPED_CORE: dict[str, Any] = {
    "command-timeout": None,
    "debug": False,
    "dry": False,
    "echo": False,
    "hide": None,
    "list-depth": None,
    "prompt-for-sudo-password": False,
    "pty": False,
    "warn-only": False,
    "write-pyc": False,
}


class CriProgram(Program):
    """Invoke's Program with ``cri``'s core options: ``-f/--file`` for the zerops.yml of every task
    and ``--config FILE`` for a settings file, instead of the options of ``c.run()``."""

    def core_args(self) -> list[Argument]:
        kept = [arg for arg in super().core_args() if arg.name in KEPT_CORE]
        return [
            *kept,
            Argument(names=("file", SHORT_FLAGS["file"]), help=COMMON_HELP["file"] + "; for every task of the call"),
            Argument(
                names=("config",),
                help="settings file in invoke.yaml format, read after invoke.yaml and INVOKE_CRI_* "
                "(default: $INVOKE_RUNTIME_CONFIG); it must exist",
            ),
        ]

    def parse_core_args(self) -> None:
        super().parse_core_args()
        args = self.core[0].args
        for name, value in DROPPED_CORE.items():  # Program.parse_core/parse_cleanup still read them
            if name not in args:
                args[name] = Argument(name=name, default=value)

    def update_config(self, merge: bool = True) -> None:
        runtime = self.args.config.value or os.environ.get("INVOKE_RUNTIME_CONFIG") or None
        if runtime is not None and not Path(runtime).expanduser().is_file():
            source = "--config" if self.args.config.value else "INVOKE_RUNTIME_CONFIG"
            raise ConfigError(f"{source} {runtime}: no such file")
        if self.args.file.value:  # below the tasks' own --file, above every settings file
            self.config.load_overrides({"cri": {"file": self.args.file.value}}, merge=False)
        self.config.set_runtime_path(Path(runtime) if runtime else None)
        self.config.load_runtime(merge=False)
        if merge:
            self.config.merge()


def program() -> Program:
    """A fresh ``cri`` Program around :func:`cri_tasks.collection`."""
    return CriProgram(
        namespace=collection(),
        name="cri",
        binary="cri",
        binary_names=["cri"],
        version=__version__,
        config_class=CriConfig,
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``cri = cri_tasks.cli:main``); exits like ``invoke`` does.

    ``argv`` is like :data:`sys.argv`, program name first (default: :data:`sys.argv`).
    """
    args = sys.argv if argv is None else argv
    try:
        program().run(args)
    except CriError as exc:  # raised before any task runs, e.g. by an unreadable invoke.yaml
        if "--json" in args[1:] or "-j" in args[1:]:
            print_error_document(_task_named(args), exc)
        sys.exit(str(exc))


def _task_named(argv: list[str]) -> str:
    names = set(collection().task_names)
    return next((arg for arg in argv[1:] if arg in names), "")


if __name__ == "__main__":  # python -m cri_tasks.cli
    main()
