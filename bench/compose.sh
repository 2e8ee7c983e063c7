#!/usr/bin/env bash
# Benchmark Compose: `up -d` then `down` of a 2-service project (a web
# server with a published port, and a client) and of a 10-service one,
# in one hyperfine run per project size, side by side:
#   cais compose       on the cais daemon
#   docker compose v2  on the cais daemon
#   docker compose v2  on the peer dockerd (../shared/bench/README.md), when
#                      /run/peer-docker.sock answers
# Each row is `up -d` immediately followed by `down -t 0`, so every run
# starts from nothing; `--show-output` is off. Images are busybox-static
# imported offline on both daemons.
#
# Needs: hyperfine, jq, busybox-static, the docker CLI, and docker compose
# v2.40.3 as a CLI plugin in $DOCKER_CONFIG/cli-plugins (the compose tests
# install it under target/tmp/compose-docker-config; pass that directory
# as DOCKER_CONFIG).
# Usage: DOCKER_CONFIG=DIR bench/compose.sh [RUNS]   (default 10)
set -euo pipefail

RUNS=${1:-10}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CAIS=${CAIS:-$HERE/target/release/cais}
WORK=$(mktemp -d /tmp/cais-compose-bench.XXXXXX)
PEER=unix:///run/peer-docker.sock
SOCK=unix://$WORK/cais.sock
CAIS_PID=
cleanup() {
    for d in "$WORK"/p*; do
        [ -d "$d" ] || continue
        (cd "$d" && "$CAIS" -H "$SOCK" compose down -t 0 >/dev/null 2>&1) || true
    done
    if [ -n "${HAVE_PEER:-}" ]; then
        for d in "$WORK"/p*; do
            (cd "$d" && docker -H "$PEER" compose down -t 0 >/dev/null 2>&1) || true
        done
        docker -H "$PEER" rmi bench-compose-busybox >/dev/null 2>&1 || true
    fi
    if [ -n "$CAIS_PID" ]; then
        kill "$CAIS_PID" 2>/dev/null || true
        wait "$CAIS_PID" 2>/dev/null || true
    fi
    umount -R "$WORK/root" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in hyperfine jq busybox docker; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
docker compose version >/dev/null || { echo "needs docker compose v2 in \$DOCKER_CONFIG/cli-plugins" >&2; exit 1; }

# An offline busybox image.
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/bb.tar" .

"$CAIS" daemon -H "$SOCK" --data-root "$WORK/root" --exec-root "$WORK/run" >"$WORK/daemon.log" 2>&1 &
CAIS_PID=$!
for _ in $(seq 100); do [ -S "$WORK/cais.sock" ] && break; sleep 0.1; done
"$CAIS" -H "$SOCK" import "$WORK/bb.tar" bench-compose-busybox >/dev/null
HAVE_PEER=
if docker -H "$PEER" version >/dev/null 2>&1; then
    docker -H "$PEER" import "$WORK/bb.tar" bench-compose-busybox >/dev/null
    HAVE_PEER=1
fi

project() { # DIR SERVICES PORT
    mkdir -p "$1"
    {
        echo "services:"
        echo "  web:"
        echo "    image: bench-compose-busybox"
        echo "    command: [\"httpd\", \"-f\", \"-p\", \"80\"]"
        echo "    ports: [\"$3:80\"]"
        for i in $(seq 2 "$2"); do
            echo "  client$i:"
            echo "    image: bench-compose-busybox"
            echo "    command: [\"sleep\", \"1000\"]"
            echo "    depends_on: [web]"
        done
    } >"$1/compose.yaml"
}

for n in 2 10; do
    project "$WORK/p$n" "$n" $((18800 + n))
    cmds=(
        -n "cais compose ($n services)" "cd $WORK/p$n && $CAIS -H $SOCK compose up -d && $CAIS -H $SOCK compose down -t 0"
        -n "docker compose v2 on cais ($n)" "cd $WORK/p$n && docker -H $SOCK compose up -d && docker -H $SOCK compose down -t 0"
    )
    if [ -n "$HAVE_PEER" ]; then
        cmds+=(-n "docker compose v2 on dockerd ($n)" "cd $WORK/p$n && docker -H $PEER compose up -d && docker -H $PEER compose down -t 0")
    fi
    hyperfine --runs "$RUNS" --warmup 1 --style basic --export-json "$WORK/n$n.json" "${cmds[@]}"
    jq -r '.results as $r | $r[] | "median \(.median * 1000 | floor) ms  \(.command)  (x\(($r[1].median / .median * 100 | floor) / 100) vs docker compose v2 on cais)"' "$WORK/n$n.json"
done
