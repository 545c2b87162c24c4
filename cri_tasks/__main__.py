"""``python -m cri_tasks``: the ``cri`` program, for an environment whose scripts folder is not on
PATH (``python -m cri_tasks deploy`` is ``cri deploy``)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":  # importing the module (pkgutil.walk_packages, docs tools) runs nothing
    main()
