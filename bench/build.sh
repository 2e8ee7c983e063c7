#!/usr/bin/env bash
# Benchmark image builds: `cais build` (through `cais daemon`, and on a
# local store with --data-root) against the builders on this machine:
# docker's classic builder (DOCKER_BUILDKIT=0, the peer dockerd of
# ../shared/bench/README.md), BuildKit (Debian's docker 20.10 CLI with
# DOCKER_BUILDKIT=1 against the same dockerd) and `buildah bud --layers`.
# One hyperfine run holds every builder twice: cold (`--no-cache`, every
# step executed) and warm (everything cached, the common rebuild).
#
# The Dockerfile is multi-stage: a first stage that COPYs 200 small files
# and a 4 MiB one and RUNs over them, a second that copies a result from
# it, COPYs the files again and RUNs once more. Each tool's store gets the
# same offline busybox base image (busybox-static, imported as
# bench-busybox), so nothing touches a registry.
#
# Needs: hyperfine jq busybox-static buildah podman (apt), a running peer
# dockerd on /run/peer-docker.sock for the docker rows (skipped otherwise).
# Usage: bench/build.sh [RUNS]     (default 10 runs per command)
set -euo pipefail

RUNS=${1:-10}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/cais-build-bench.XXXXXX)
PEER=unix:///run/peer-docker.sock
CAIS_PID=
cleanup() {
    if [ -n "$CAIS_PID" ]; then
        kill "$CAIS_PID" 2>/dev/null || true
        wait "$CAIS_PID" 2>/dev/null || true
    fi
    if [ -n "${HAVE_DOCKER:-}" ]; then
        docker -H "$PEER" rmi -f bench-build-classic bench-build-buildkit bench-busybox >/dev/null 2>&1 || true
    fi
    buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" rmi -a -f >/dev/null 2>&1 || true
    umount -R "$WORK/cais-root" "$WORK/local-root" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in hyperfine jq buildah podman busybox; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

(cd "$HERE" && cargo build --release -q -p cais)
CAIS="$HERE/target/release/cais"

# ---- the base image: a busybox-static root filesystem.
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{bin,etc,tmp,proc,sys,dev,root}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for applet in $("$ROOTFS/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$ROOTFS/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\n' >"$ROOTFS/etc/group"
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$ROOTFS" -cf "$WORK/busybox.tar" .

# ---- the context.
CTX="$WORK/context"
mkdir -p "$CTX/src"
for i in $(seq 1 200); do
    printf 'file %d: the quick brown fox jumps over the lazy dog\n' "$i" >"$CTX/src/f$i.txt"
done
head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' 'x' >"$CTX/src/big.dat"
cat >"$CTX/Dockerfile" <<'EOF'
FROM bench-busybox AS build
WORKDIR /src
COPY src/ ./
RUN for f in *.txt; do tr a-z A-Z < "$f" > "$f.up"; done && cat *.up | sha256sum > /digest.txt

FROM bench-busybox
COPY --from=build /digest.txt /digest.txt
COPY src/ /srv/
RUN wc -c /srv/big.dat > /sizes.txt
CMD ["cat", "/digest.txt"]
EOF

# ---- cais: a daemon with its own root, and a local store.
"$CAIS" daemon -H "unix://$WORK/cais.sock" --data-root "$WORK/cais-root" --exec-root "$WORK/cais-run" \
    >"$WORK/cais-daemon.log" 2>&1 &
CAIS_PID=$!
for _ in $(seq 100); do [ -S "$WORK/cais.sock" ] && break; sleep 0.1; done
CAISD="$CAIS -H unix://$WORK/cais.sock"
$CAISD import "$WORK/busybox.tar" bench-busybox >/dev/null
"$CAIS" import --data-root "$WORK/local-root" "$WORK/busybox.tar" bench-busybox >/dev/null

names=(cais cais-local)
builders=("$CAISD build -q" "$CAIS build --data-root $WORK/local-root -q")
tags=(bench-build-cais bench-build-local)

# ---- docker's classic builder and BuildKit, on the peer dockerd.
if docker -H "$PEER" version >/dev/null 2>&1; then
    HAVE_DOCKER=1
    docker -H "$PEER" import "$WORK/busybox.tar" bench-busybox >/dev/null
    names+=(docker-classic)
    builders+=("env DOCKER_BUILDKIT=0 docker -H $PEER build -q")
    tags+=(bench-build-classic)
    if [ -x /usr/bin/docker ] && DOCKER_BUILDKIT=1 /usr/bin/docker -H "$PEER" build -q -t bench-build-buildkit "$CTX" >/dev/null 2>&1; then
        names+=(docker-buildkit)
        builders+=("env DOCKER_BUILDKIT=1 /usr/bin/docker -H $PEER build -q")
        tags+=(bench-build-buildkit)
    else
        echo "docker-buildkit: BuildKit does not build here, not measured" >&2
    fi
else
    echo "docker: no peer daemon on $PEER, not measured" >&2
fi

# ---- buildah, in its own storage (podman imports the base into it).
# podman/buildah cannot raise RLIMIT_NOFILE here without this.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
STORE="--root $WORK/buildah --runroot $WORK/buildah-run --storage-driver overlay"
podman $STORE import "$WORK/busybox.tar" bench-busybox >/dev/null
names+=(buildah)
# crun refuses hybrid cgroup hosts like this one (see ../shared/bench/README.md):
# buildah runs its RUN steps with runc when there is one.
RUNTIME=
command -v runc >/dev/null && RUNTIME="--runtime $(command -v runc)"
builders+=("buildah $STORE bud --layers --pull=never $RUNTIME -q")
tags+=(bench-build-buildah)

# Every builder once, so the warm rows start cached and failures show here.
for i in "${!names[@]}"; do
    if ! ${builders[$i]} -t "${tags[$i]}" "$CTX" >"$WORK/first-${names[$i]}.log" 2>&1; then
        echo "${names[$i]}: the first build failed:" >&2
        cat "$WORK/first-${names[$i]}.log" >&2
        exit 1
    fi
done

cmds=()
for i in "${!names[@]}"; do
    cmds+=(-n "${names[$i]} cold" "${builders[$i]} --no-cache -t ${tags[$i]} $CTX")
    cmds+=(-n "${names[$i]} warm" "${builders[$i]} -t ${tags[$i]} $CTX")
done
echo "$(nproc) CPUs; context $(du -sh "$CTX" | cut -f1); builders: ${names[*]}" >&2
hyperfine --warmup 1 --runs "$RUNS" --export-json "$WORK/result.json" "${cmds[@]}" >&2

jq -r '
  [.results[] | {name: (.command | split(" ")[0]), phase: (.command | split(" ")[1]), median: .median}] as $r
  | "\nmedians (ms):",
    ($r[] | "  \(.name) \(.phase): \(.median * 1000 | round)"),
    (["cold", "warm"][] as $p
      | ($r | map(select(.phase == $p))) as $rows
      | ($rows | map(select(.name | startswith("cais") | not)) | min_by(.median)) as $best
      | ($rows[] | select(.name | startswith("cais")))
      | "\($p): \(.name) is \(($best.median / .median) * 100 | round / 100)x the speed of the fastest other (\($best.name), \($best.median * 1000 | round) ms)")
' "$WORK/result.json"
