"""The ``cri`` program: the cri-tasks collection as a standalone command, no tasks.py needed.

``cri prepare --setup app``, ``cri validate``, ``cri --list``, ``cri --help prepare``,
``cri --version``; shell completion with ``cri --print-completion-script bash``.

It reads the same configuration as ``invoke`` does for a tasks.py in the current directory
(:class:`~cri_tasks.config.CriConfig`): ``invoke.yaml`` there, ``~/.invoke.yaml``,
``/etc/invoke.yaml``, ``INVOKE_CRI_*`` variables, ``-f FILE`` / ``INVOKE_RUNTIME_CONFIG``. A
Program with a config class prefixed ``cri`` would read ``cri.yaml`` and ``CRI_*`` instead, and a
project would need two config files for the same settings.
"""

from __future__ import annotations

import sys

from invoke import Program

from ._version import __version__
from .config import CriConfig
from .errors import CriError
from .tasks import collection

__all__ = ["main", "program"]


def program() -> Program:
    """A fresh ``cri`` Program around :func:`cri_tasks.collection`."""
    return Program(
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
    try:
        program().run(argv)
    except CriError as exc:  # raised before any task runs, e.g. by an unreadable invoke.yaml
        sys.exit(str(exc))


if __name__ == "__main__":  # python -m cri_tasks.cli
    main()
