"""The official Gleam recipe (zerops-recipe-apps/gleam-hello-world-app), its zerops.yaml unmodified,
read from the shared corpus: it validates, prepares, builds and deploys both setups on the real
engine (issue 15, "Done when").

No Gleam binary can be had here, so the test makes a stand-in: a ``gleam`` script in a local
archive (``cri.gleam.source``) that implements what the recipe runs (``export erlang-shipment``,
``deps download``, ``run -m MODULE``) for an Erlang source tree the test writes, with ``erlc``
and ``erl`` of the image. ``zsc add gleam@1.5`` in build.prepareCommands and run.prepareCommands
gets the same archive. The variables of the recipe's database service (``${db_hostname}``...)
come from the project env file, as a user would give them locally.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import deploy, get, invoke, stop_and_clean

pytestmark = pytest.mark.engine

RECIPE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "corpus"
    / "zerops-yml"
    / "zerops-recipe-apps__gleam-hello-world-app__zerops.yaml.yml"
)
EXAMPLE_APP = Path(__file__).resolve().parents[1] / "examples" / "hello" / "src" / "hello.erl"

GLEAM = r"""#!/bin/sh
# Stand-in for the Gleam CLI: what the recipe runs, for an Erlang source tree.
set -eu
name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' gleam.toml 2>/dev/null || true)
case "${1-} ${2-}" in
  "--version "*) echo "gleam 1.5.1" ;;
  "export erlang-shipment")
    out=build/erlang-shipment
    mkdir -p "$out/$name/ebin"
    erlc -o "$out/$name/ebin" src/*.erl
    cat > "$out/entrypoint.sh" <<EOF
#!/bin/sh
set -eu
BASE=\$(dirname "\$0")
case "\${1-}" in
  run) exec erl -pa "\$BASE"/*/ebin -noshell -eval '$name:main()' ;;
  *) echo "usage: \$0 run" >&2; exit 1 ;;
esac
EOF
    chmod 0755 "$out/entrypoint.sh" ;;
  "deps download")
    mkdir -p build/packages
    echo "downloaded" > build/packages/packages.toml ;;
  "run -m")
    mkdir -p build/dev/erlang/ebin
    erlc -o build/dev/erlang/ebin src/*.erl
    exec erl -pa build/dev/erlang/ebin -noshell -eval "${3}:main(), halt()." ;;
  *) echo "gleam stand-in: not implemented: $*" >&2; exit 2 ;;
esac
"""

MIGRATE_ERL = """\
-module(migrate).
-export([main/0]).

main() ->
    ok = file:write_file("/var/www/migrated-by-gleam-run", os:getenv("DB_HOST", "none")),
    io:format("migrated~n").
"""


def _gleam_archive(path: Path) -> Path:
    data = GLEAM.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("gleam")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def recipe(tmp_path: Path, engine_settings: dict[str, Any]) -> Iterator[Path]:
    if not RECIPE.is_file():
        pytest.skip(f"the shared corpus is not next to the project ({RECIPE.name})")
    proj = tmp_path / "gleam-hello-world-app"
    (proj / "src").mkdir(parents=True)
    (proj / "zerops.yaml").write_bytes(RECIPE.read_bytes())  # unmodified
    (proj / "gleam.toml").write_text('name = "app"\nversion = "1.0.0"\n')
    (proj / "manifest.toml").write_text("packages = []\n")
    (proj / "src" / "app.erl").write_text(
        EXAMPLE_APP.read_text().replace("-module(hello).", "-module(app).").replace('"8000"', '"3000"')
    )
    (proj / "src" / "migrate.erl").write_text(MIGRATE_ERL)
    (proj / "migrate.sh").write_text(
        '#!/bin/sh\necho "migrated for $DB_NAME at $DB_HOST, HOME ${HOME-unset}" > /var/www/migrated.txt\n'
    )
    (proj / "project.env").write_text("db_hostname=db\ndb_port=5432\ndb_user=db\ndb_password=secret\n")
    (proj / "tasks.py").write_text("from cri_tasks import collection\nns = collection()\n")
    settings = {
        **engine_settings,
        "gleam": {"source": str(_gleam_archive(tmp_path / "gleam.tar.gz"))},
        "env_file": "project.env",
    }
    (proj / "invoke.yaml").write_text(yaml.safe_dump({"cri": settings}))
    yield proj
    stop_and_clean(proj)


def _sh(container: str, script: str) -> str:
    return subprocess.run(
        ["docker", "exec", container, "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout


def test_the_official_gleam_recipe_validates_prepares_and_deploys_both_setups_unmodified(recipe: Path) -> None:
    proc = invoke(recipe, "validate")
    assert proc.returncode == 0, proc.stderr
    proc = invoke(recipe, "prepare")
    assert proc.returncode == 0, proc.stderr

    proc, doc = deploy(recipe, "--setup", "prod")
    assert proc.returncode == 0, proc.stderr
    (prod,) = doc["setups"]
    assert get(prod["urls"][0]).startswith("Hello from the BEAM")
    container = prod["containers"][0]
    # build/erlang-shipment/~ landed at /var/www, migrate.sh beside entrypoint.sh; the
    # execOnce init command ran it with the recipe's env (DB_HOST from ${db_hostname})
    assert _sh(container, "cd /var/www && ls entrypoint.sh migrate.sh app/ebin/app.beam") != ""
    # item 12: no HOME in the runtime container unless run.envVariables set one (prod does not)
    assert _sh(container, "cat /var/www/migrated.txt") == "migrated for db at db, HOME unset\n"

    # dev has no deploy.readinessCheck: no readiness gate (item 1), so `zsc noop` on port 3000 deploys
    proc, doc = deploy(recipe, "--setup", "dev")
    assert proc.returncode == 0, proc.stderr
    (dev,) = doc["setups"]
    container = dev["containers"][0]
    # source deployed; the init command ran `gleam deps download && gleam run -m migrate` with
    # the gleam of run.prepareCommands (zsc add gleam@1.5) and the recipe's own HOME
    assert _sh(container, "cd /var/www && ls src/app.erl gleam.toml zerops.yaml build/packages/packages.toml") != ""
    assert _sh(container, "cat /var/www/migrated-by-gleam-run") == "db"
    assert _sh(container, "cat /proc/1/environ | tr '\\0' '\\n' | grep ^HOME=") == "HOME=/home/zerops\n"
