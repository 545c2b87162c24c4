FROM alpine:3.20
RUN apk add --no-cache bash ca-certificates curl erlang erlang-dev rebar3 git sudo tar gzip
RUN otp=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().') \
 && { [ "$otp" -ge 26 ] || { echo "cri-tasks: Erlang/OTP $otp installed, Gleam needs 26 or newer" >&2; exit 1; }; }
RUN adduser -D -h /home/zerops -s /bin/sh zerops \
 && printf 'zerops ALL=(ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/zerops \
 && chmod 0440 /etc/sudoers.d/zerops \
 && mkdir -p /var/www /var/lib/zsc \
 && chown zerops:zerops /var/www /var/lib/zsc
ADD https://github.com/gleam-lang/gleam/releases/download/v1.5.1/gleam-v1.5.1-x86_64-unknown-linux-musl.tar.gz /tmp/gleam.tar.gz
RUN tar -xzf /tmp/gleam.tar.gz -C /usr/local/bin gleam && rm /tmp/gleam.tar.gz && gleam --version
RUN ["/bin/sh", "-c", "printf \"%s\" \"$0\" > /usr/local/bin/zsc && chmod 0755 /usr/local/bin/zsc", "#!/bin/sh\n# zsc as cri-tasks provides it: the subset of Zerops' setup control that official recipes use.\n#   zsc execOnce KEY [--retryUntilSuccessful] -- CMD...   run CMD once per KEY across the\n#                                                          containers of a deploy (shared volume)\n#   zsc noop [--silent]                                    idle until stopped\n#   zsc add TOOL@VERSION                                   toolchains are part of the image: no-op\nset -u\nONCE_DIR=${ZSC_ONCE_DIR:-/var/lib/zsc}\ncmd=${1-}\n[ $# -gt 0 ] && shift\ncase \"$cmd\" in\n  noop)\n    [ \"${1-}\" = \"--silent\" ] || echo \"zsc noop: idling\"\n    trap 'exit 0' TERM INT\n    while :; do sleep 3600 & wait $!; done\n    ;;\n  execOnce)\n    key=${1-}\n    [ -n \"$key\" ] || { echo \"zsc execOnce: missing KEY\" >&2; exit 2; }\n    shift\n    retry=0\n    while [ $# -gt 0 ] && [ \"$1\" != \"--\" ]; do\n      case \"$1\" in\n        --retryUntilSuccessful) retry=1 ;;\n        *) echo \"zsc execOnce: unknown option $1\" >&2; exit 2 ;;\n      esac\n      shift\n    done\n    [ \"${1-}\" = \"--\" ] || { echo \"zsc execOnce: expected -- before the command\" >&2; exit 2; }\n    shift\n    safe=$(printf '%s' \"$key\" | tr -c 'A-Za-z0-9._-' '_')\n    if mkdir \"$ONCE_DIR/$safe.lock\" 2>/dev/null; then\n      while :; do\n        \"$@\"\n        rc=$?\n        [ \"$rc\" -eq 0 ] || [ \"$retry\" -eq 0 ] && break\n        echo \"zsc execOnce $key: exit code $rc, retrying in 2 s\" >&2\n        sleep 2\n      done\n      echo \"$rc\" > \"$ONCE_DIR/$safe.tmp\" && mv \"$ONCE_DIR/$safe.tmp\" \"$ONCE_DIR/$safe.done\"\n      exit \"$rc\"\n    fi\n    echo \"zsc execOnce $key: already run by another container; waiting for its result\"\n    while [ ! -f \"$ONCE_DIR/$safe.done\" ]; do sleep 0.2; done\n    exit \"$(cat \"$ONCE_DIR/$safe.done\")\"\n    ;;\n  add)\n    echo \"zsc add ${1-}: toolchains are part of the cri-tasks runtime image; nothing to do\"\n    ;;\n  *)\n    echo \"zsc $cmd: not supported by cri-tasks (supported: execOnce, noop, add)\" >&2\n    exit 2\n    ;;\nesac\n"]
ENV HOME=/home/zerops
WORKDIR /home/zerops
COPY --chown=zerops:zerops files/ /home/zerops/
USER zerops
RUN ["/bin/sh", "-c", "sudo apk add imagemagick"]
RUN ["/bin/sh", "-c", "gleam deps download"]
RUN ["/bin/sh", "-c", "cat > notes.txt \u003c\u003cEOF\na \"quoted\" $HOME \\ line\nEOF\n"]
WORKDIR /var/www
