"""This repository's own tasks: the cri-tasks collection, composed the way a user's tasks.py would.

    invoke --list
    invoke validate --file examples/hello/zerops.yml
"""

from invoke import Collection, Context, task

from cri_tasks import collection


@task
def provision(c: Context) -> None:
    """Install and start a Docker engine, buildx and a local base image (root; idempotent)."""
    c.run("bash scripts/provision-engine", pty=False)


@task(help={"args": "extra arguments for pytest"})
def test(c: Context, args: str = "") -> None:
    """Run the test suite."""
    c.run(f"python -m pytest {args}", pty=False)


ns = collection()
ns.add_task(provision)
ns.add_task(test)
