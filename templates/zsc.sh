#!/bin/sh
# zsc as cri-tasks provides it: the subset of Zerops' setup control that official recipes use.
#   zsc execOnce KEY [--retryUntilSuccessful] -- CMD...   run CMD once per KEY across the
#                                                          containers of a deploy (shared volume)
#   zsc noop [--silent]                                    idle until stopped
#   zsc add TOOL@VERSION                                   toolchains are part of the image: no-op
set -u
ONCE_DIR=${ZSC_ONCE_DIR:-/var/lib/zsc}
cmd=${1-}
[ $# -gt 0 ] && shift
case "$cmd" in
  noop)
    [ "${1-}" = "--silent" ] || echo "zsc noop: idling"
    trap 'exit 0' TERM INT
    while :; do sleep 3600 & wait $!; done
    ;;
  execOnce)
    key=${1-}
    [ -n "$key" ] || { echo "zsc execOnce: missing KEY" >&2; exit 2; }
    shift
    retry=0
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
      case "$1" in
        --retryUntilSuccessful) retry=1 ;;
        *) echo "zsc execOnce: unknown option $1" >&2; exit 2 ;;
      esac
      shift
    done
    [ "${1-}" = "--" ] || { echo "zsc execOnce: expected -- before the command" >&2; exit 2; }
    shift
    safe=$(printf '%s' "$key" | tr -c 'A-Za-z0-9._-' '_')
    if mkdir "$ONCE_DIR/$safe.lock" 2>/dev/null; then
      while :; do
        "$@"
        rc=$?
        [ "$rc" -eq 0 ] || [ "$retry" -eq 0 ] && break
        echo "zsc execOnce $key: exit code $rc, retrying in 2 s" >&2
        sleep 2
      done
      echo "$rc" > "$ONCE_DIR/$safe.tmp" && mv "$ONCE_DIR/$safe.tmp" "$ONCE_DIR/$safe.done"
      exit "$rc"
    fi
    echo "zsc execOnce $key: already run by another container; waiting for its result"
    while [ ! -f "$ONCE_DIR/$safe.done" ]; do sleep 0.2; done
    exit "$(cat "$ONCE_DIR/$safe.done")"
    ;;
  add)
    echo "zsc add ${1-}: toolchains are part of the cri-tasks runtime image; nothing to do"
    ;;
  *)
    echo "zsc $cmd: not supported by cri-tasks (supported: execOnce, noop, add)" >&2
    exit 2
    ;;
esac
