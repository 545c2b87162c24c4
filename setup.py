"""Package discovery; every other piece of metadata lives in setup.cfg.

``find_packages`` finds cri_tasks and each subpackage below it (cri_tasks.targets, and any added
later), so none can be left out of the wheel. templates/ is not below cri_tasks/ on disk:
setup.cfg's ``package_dir`` maps it to cri_tasks.templates, and it is named here because
discovery only sees folders where they are. tests/test_wheel.py compares the built wheel with
the source tree.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["cri_tasks", "cri_tasks.*"]), "cri_tasks.templates"])
