#!/usr/bin/env bash
# Benchmark `cais pull` against the other pullers on this machine: a
# ~150 MB multi-layer image from a local Distribution registry (Debian's
# docker-registry) with `cais pull` (into a fresh store, layers unpacked),
# `skopeo copy` to an OCI directory (no unpacking), `podman pull` (unpacked
# into containers/storage) and, when a docker daemon answers, `docker pull`.
# One hyperfine run; every command starts from an empty destination.
#
# The image: six layers, each 24 MiB of pseudo-random bytes (they do not
# compress) and 20 MiB of text (which does), gzip -6 as docker writes them:
# about 155 MB on the wire, 280 MB unpacked.
#
# Needs: docker-registry skopeo podman hyperfine jq openssl (apt), a release
# build (this script runs `cargo build --release -p cais`).
# Usage: bench/pull.sh [RUNS]     (default 10 runs per command)
# Everything listens on 127.0.0.1 only and stops when the script exits.
set -euo pipefail

RUNS=${1:-10}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/cais-pull-bench.XXXXXX)
REG_PID=
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    podman --root "$WORK/podman" --runroot "$WORK/podman-run" rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in docker-registry skopeo podman hyperfine jq openssl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

(cd "$HERE" && cargo build --release -q -p cais)
CAIS="$HERE/target/release/cais"

# ---- the image, as an OCI layout.
LAYOUT="$WORK/image"
mkdir -p "$LAYOUT/blobs/sha256"
layers=()
diffs=()
for i in 1 2 3 4 5 6; do
    d="$WORK/l$i"
    mkdir -p "$d/opt/layer$i"
    # (head closes the pipe early: the producers' SIGPIPE is expected.)
    { openssl enc -aes-128-ctr -nosalt -pass "pass:layer$i" -pbkdf2 </dev/zero 2>/dev/null || true; } |
        head -c $((24 * 1024 * 1024)) >"$d/opt/layer$i/blob.bin"
    { seq -f "layer $i line %.0f: lorem ipsum dolor sit amet, consectetur adipiscing elit" 1 400000 || true; } |
        head -c $((20 * 1024 * 1024)) >"$d/opt/layer$i/text.txt"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d" -cf "$WORK/layer$i.tar" .
    diffs+=("\"sha256:$(sha256sum "$WORK/layer$i.tar" | cut -c1-64)\"")
    gzip -6 -n "$WORK/layer$i.tar"
    h=$(sha256sum "$WORK/layer$i.tar.gz" | cut -c1-64)
    mv "$WORK/layer$i.tar.gz" "$LAYOUT/blobs/sha256/$h"
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$h\",\"size\":$(stat -c%s "$LAYOUT/blobs/sha256/$h")}")
    rm -rf "$d"
done
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$(IFS=,; echo "${diffs[*]}")" >"$WORK/config.json"
c=$(sha256sum "$WORK/config.json" | cut -c1-64)
cs=$(stat -c%s "$WORK/config.json")
mv "$WORK/config.json" "$LAYOUT/blobs/sha256/$c"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$c" "$cs" "$(IFS=,; echo "${layers[*]}")" >"$WORK/manifest.json"
m=$(sha256sum "$WORK/manifest.json" | cut -c1-64)
ms=$(stat -c%s "$WORK/manifest.json")
mv "$WORK/manifest.json" "$LAYOUT/blobs/sha256/$m"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
    "$m" "$ms" >"$LAYOUT/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
SIZE=$(du -sb "$LAYOUT/blobs" | cut -f1)

# ---- Distribution on a free loopback port, with the image in it.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
IMAGE="127.0.0.1:$PORT/bench/image:1"
skopeo --registries-conf /dev/null copy -q --dest-tls-verify=false "oci:$LAYOUT:1" "docker://$IMAGE"
echo "image: $IMAGE, $((SIZE / 1000000)) MB of blobs in 6 layers; $(nproc) CPUs" >&2

# podman cannot raise RLIMIT_NOFILE here without this.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
PODMAN="podman --root $WORK/podman --runroot $WORK/podman-run --storage-driver overlay"

cmds=(
    -n cais --prepare "rm -rf $WORK/cais" "$CAIS pull -q --data-root $WORK/cais $IMAGE"
    -n skopeo --prepare "rm -rf $WORK/oci" "skopeo --registries-conf /dev/null copy -q --src-tls-verify=false docker://$IMAGE oci:$WORK/oci:1"
    -n podman --prepare "$PODMAN rmi -a -f >/dev/null 2>&1 || true" "$PODMAN pull -q --tls-verify=false $IMAGE"
)
if docker info >/dev/null 2>&1; then
    # The daemon must list 127.0.0.1 as insecure (it does by default).
    cmds+=(-n docker --prepare "docker rmi -f $IMAGE >/dev/null 2>&1 || true" "docker pull -q $IMAGE")
else
    echo "docker: no daemon running, not measured" >&2
fi

hyperfine --warmup 1 --runs "$RUNS" --export-json "$WORK/result.json" "${cmds[@]}" >&2

jq -r '
  [.results[] | {name: .command, median: .median}] as $r
  | ($r | map(select(.name != "cais")) | min_by(.median)) as $best
  | ($r[] | select(.name == "cais")) as $cais
  | "\nmedians (s):",
    ($r[] | "  \(.name): \(.median * 1000 | round / 1000)"),
    "fastest other: \($best.name); cais is \(($best.median / $cais.median) * 100 | round / 100)x faster"
' "$WORK/result.json"
