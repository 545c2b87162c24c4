"""This repository's own tasks: the cri-tasks collection, composed the way a user's tasks.py would.

invoke --list
invoke validate --file examples/hello/zerops.yml
"""

from invoke import Context, task

from cri_tasks import collection


@task
def provision(c: Context) -> None:
    """Check the Docker engine and buildx (installing them as root only when none answers); add the base image and registry."""
    c.run("bash scripts/provision-engine", pty=False)


@task(help={"args": "extra arguments for pytest"})
def test(c: Context, args: str = "") -> None:
    """Run the test suite against the installed wheel (scripts/test)."""
    c.run(f"bash scripts/test {args}", pty=False)


ns = collection()
ns.add_task(provision)
ns.add_task(test)
