FROM alpine:3.20

RUN apk add --no-cache ca-certificates erlang erlang-dev rebar3 git sudo tar gzip
RUN adduser -D -h /home/zerops -s /bin/sh zerops \
 && printf 'zerops ALL=(ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/zerops \
 && chmod 0440 /etc/sudoers.d/zerops \
 && mkdir -p /var/www \
 && chown zerops:zerops /var/www
ADD https://github.com/gleam-lang/gleam/releases/download/v1.5.1/gleam-v1.5.1-x86_64-unknown-linux-musl.tar.gz /tmp/gleam.tar.gz
RUN tar -xzf /tmp/gleam.tar.gz -C /usr/local/bin gleam && rm /tmp/gleam.tar.gz && gleam --version
ENV HOME=/home/zerops
WORKDIR /home/zerops
COPY --chown=zerops:zerops files/ /home/zerops/
USER zerops
RUN ["/bin/sh", "-c", "sudo apk add imagemagick"]
RUN ["/bin/sh", "-c", "gleam deps download"]
RUN ["/bin/sh", "-c", "cat > notes.txt \u003c\u003cEOF\na \"quoted\" $HOME \\ line\nEOF\n"]
WORKDIR /var/www
