#!/bin/sh
# Like the entrypoint.sh of `gleam export erlang-shipment`: `./entrypoint.sh run` starts the VM.
set -eu
BASE=$(dirname "$0")
case "${1-}" in
  run) exec erl -pa "$BASE"/*/ebin -noshell -eval 'hello:main()' ;;
  *) echo "usage: $0 run" >&2; exit 1 ;;
esac
