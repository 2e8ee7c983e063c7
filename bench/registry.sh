#!/usr/bin/env bash
# Benchmark `cais registry serve` against Distribution (Debian's
# docker-registry) on this machine, same clients, same disk, one run,
# hyperfine medians:
#   push, pull   skopeo copy of a ~150 MB image (3 gzip layers) in and out
#   pull1        one curl client fetching every blob of it
#   pull16       16 curl clients fetching every blob of it at once
#   push8        8 curl clients each uploading every layer (POST + PUT)
# and resident memory idle, after the load, and at peak.
#
# Needs: skopeo docker-registry hyperfine jq curl (apt), a release build
# (this script runs `cargo build --release -p cais`).
# Usage: bench/registry.sh [RUNS]     (default 5 runs per measurement)
# Everything listens on 127.0.0.1 only and stops when the script exits.
set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/cais-registry-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in skopeo docker-registry hyperfine jq curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

(cd "$HERE" && cargo build --release -q -p cais)
CAIS="$HERE/target/release/cais"

# ---- a 150 MB image: three 50 MB layers of random (incompressible) data.
LAYOUT="$WORK/image"
mkdir -p "$LAYOUT/blobs/sha256"
layers=()
diffs=()
for i in 1 2 3; do
    mkdir -p "$WORK/l$i"
    head -c $((50 * 1024 * 1024)) /dev/urandom > "$WORK/l$i/data$i"
    tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$WORK/l$i" -cf "$WORK/layer$i.tar" .
    diffs+=("\"sha256:$(sha256sum "$WORK/layer$i.tar" | cut -c1-64)\"")
    # Compressed already, so skopeo sends the layers as they are instead of
    # spending the run compressing them.
    gzip -1 -n "$WORK/layer$i.tar"
    d=$(sha256sum "$WORK/layer$i.tar.gz" | cut -c1-64)
    mv "$WORK/layer$i.tar.gz" "$LAYOUT/blobs/sha256/$d"
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c%s "$LAYOUT/blobs/sha256/$d")}")
done
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$(IFS=,; echo "${diffs[*]}")" > "$WORK/config.json"
c=$(sha256sum "$WORK/config.json" | cut -c1-64)
cp "$WORK/config.json" "$LAYOUT/blobs/sha256/$c"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[%s]}' \
    "$c" "$(stat -c%s "$WORK/config.json")" "$(IFS=,; echo "${layers[*]}")" > "$WORK/manifest.json"
m=$(sha256sum "$WORK/manifest.json" | cut -c1-64)
cp "$WORK/manifest.json" "$LAYOUT/blobs/sha256/$m"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
    "$m" "$(stat -c%s "$WORK/manifest.json")" > "$LAYOUT/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$LAYOUT/oci-layout"
BLOBS=$(jq -r '.layers[].digest, .config.digest' "$WORK/manifest.json" | tr '\n' ' ')
SIZE_MB=$(( $(du -sb "$LAYOUT/blobs" | cut -f1) / 1024 / 1024 ))

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# Anonymous memory only: cais serves blobs from memory maps of the page
# cache, which VmRSS/VmHWM count although the kernel may drop them any time.
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
wait_up() { for _ in $(seq 100); do curl -sf "http://$1/v2/" >/dev/null && return; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }

# ---- cais
CAIS_ROOT="$WORK/cais-root"
"$CAIS" registry serve --addr 127.0.0.1:0 --root "$CAIS_ROOT" > "$WORK/cais.addr" 2> /dev/null &
CAIS_PID=$!
PIDS+=("$CAIS_PID")
for _ in $(seq 100); do [ -s "$WORK/cais.addr" ] && break; sleep 0.05; done
CAIS_ADDR=$(sed 's/listening on //' "$WORK/cais.addr")
wait_up "$CAIS_ADDR"

# ---- Distribution, without its in-memory descriptor cache so that wiping
# its storage between push runs is seen (cais keeps no such cache either).
DIST_PORT=$(free_port)
DIST_ADDR="127.0.0.1:$DIST_PORT"
DIST_ROOT="$WORK/dist-root"
cat > "$WORK/dist.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIST_ROOT
  delete:
    enabled: true
http:
  addr: $DIST_ADDR
EOF
docker-registry serve "$WORK/dist.yml" > /dev/null 2>&1 &
DIST_PID=$!
PIDS+=("$DIST_PID")
wait_up "$DIST_ADDR"
sleep 1
CAIS_IDLE=$(rss_kb "$CAIS_PID")
DIST_IDLE=$(rss_kb "$DIST_PID")

# ---- measurements
SK="skopeo --registries-conf /dev/null"
wipe_cais="rm -rf $CAIS_ROOT/repositories/bench $CAIS_ROOT/blobs/sha256/*"
wipe_dist="rm -rf $DIST_ROOT/docker/registry/v2/repositories/bench $DIST_ROOT/docker/registry/v2/blobs"

cat > "$WORK/pull.sh" <<EOF
#!/usr/bin/env bash
# \$2 clients, each pulling every blob of the image with curl.
set -e
for c in \$(seq \$2); do
  (for b in $BLOBS; do curl -sf -o /dev/null "http://\$1/v2/bench/app/blobs/\$b"; done) &
done
wait
EOF
chmod +x "$WORK/pull.sh"

# Sanity: one client gets every byte of the image from both servers.
check_pull() {
    local total=0 n
    for b in $BLOBS; do
        n=$(curl -sf -o /dev/null -w '%{size_download}' "http://$1/v2/bench/app/blobs/$b")
        total=$((total + n))
    done
    [ "$total" -eq "$(jq '[.layers[].size, .config.size] | add' "$WORK/manifest.json")" ] ||
        { echo "pull from $1 got $total bytes" >&2; exit 1; }
}

LAYER_FILES=$(jq -r '.layers[].digest' "$WORK/manifest.json" | sed "s|sha256:|$LAYOUT/blobs/sha256/|" | tr '\n' ' ')
cat > "$WORK/push8.sh" <<EOF
#!/usr/bin/env bash
# 8 clients, each uploading every layer (POST, then one streamed PUT) to
# its own repository.
set -e
for c in \$(seq 8); do
  (for f in $LAYER_FILES; do
     loc=\$(curl -sf -X POST -D - -o /dev/null "http://\$1/v2/bench/p\$c/blobs/uploads/" |
           tr -d '\r' | awk 'tolower(\$1) == "location:" {print \$2}')
     case "\$loc" in http*) ;; *) loc="http://\$1\$loc" ;; esac
     case "\$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
     curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "\$f" -o /dev/null \
       "\$loc\${sep}digest=sha256:\$(basename "\$f")"
   done) &
done
wait
EOF
chmod +x "$WORK/push8.sh"

TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# hf NAME ARGS...: hyperfine with the server's CPU time (user + system)
# over all runs recorded in NAME.cpu: the server's own cost, which other
# load on the machine does not inflate the way it inflates wall time.
hf() {
    local pid=$CAIS_PID before
    [[ $1 == *-dist ]] && pid=$DIST_PID
    before=$(cpu_ticks "$pid")
    hf_run "$@"
    echo $(( $(cpu_ticks "$pid") - before )) > "$WORK/$1.cpu"
}
hf_run() { hyperfine --style basic --runs "$RUNS" --export-json "$WORK/$1.json" "${@:2}" > "$WORK/$1.log" 2>&1 || { cat "$WORK/$1.log"; exit 1; }; }
median() { jq -r '.results[0].median' "$WORK/$1.json"; }

echo "image: ${SIZE_MB} MB in 3 layers; $RUNS runs each; $(nproc) cores" >&2
hf push-cais --prepare "$wipe_cais" "$SK copy -q --dest-tls-verify=false oci:$LAYOUT:v1 docker://$CAIS_ADDR/bench/app:v1"
hf push-dist --prepare "$wipe_dist" "$SK copy -q --dest-tls-verify=false oci:$LAYOUT:v1 docker://$DIST_ADDR/bench/app:v1"
hf pull-cais --prepare "rm -rf $WORK/out" "$SK copy -q --src-tls-verify=false docker://$CAIS_ADDR/bench/app:v1 dir:$WORK/out"
hf pull-dist --prepare "rm -rf $WORK/out" "$SK copy -q --src-tls-verify=false docker://$DIST_ADDR/bench/app:v1 dir:$WORK/out"
check_pull "$CAIS_ADDR"
check_pull "$DIST_ADDR"
hf pull1-cais "$WORK/pull.sh $CAIS_ADDR 1"
hf pull1-dist "$WORK/pull.sh $DIST_ADDR 1"
hf pull16-cais "$WORK/pull.sh $CAIS_ADDR 16"
hf pull16-dist "$WORK/pull.sh $DIST_ADDR 16"
hf push8-cais --prepare "rm -rf $CAIS_ROOT/repositories/bench/p*" "$WORK/push8.sh $CAIS_ADDR"
hf push8-dist --prepare "rm -rf $DIST_ROOT/docker/registry/v2/repositories/bench/p*" "$WORK/push8.sh $DIST_ADDR"
for c in 1 8; do
    for a in "$CAIS_ADDR" "$DIST_ADDR"; do
        for d in $(jq -r '.layers[].digest' "$WORK/manifest.json"); do
            curl -sf -I -o /dev/null "http://$a/v2/bench/p$c/blobs/$d" || { echo "push8 left no $d in $a" >&2; exit 1; }
        done
    done
done
CAIS_AFTER=$(rss_kb "$CAIS_PID"); CAIS_PEAK=$(hwm_kb "$CAIS_PID"); CAIS_ANON=$(anon_kb "$CAIS_PID")
DIST_AFTER=$(rss_kb "$DIST_PID"); DIST_PEAK=$(hwm_kb "$DIST_PID"); DIST_ANON=$(anon_kb "$DIST_PID")

row() {
    local name=$1 mb=$2
    local c d cc dc
    c=$(median "$name-cais"); d=$(median "$name-dist")
    cc=$(cat "$WORK/$name-cais.cpu"); dc=$(cat "$WORK/$name-dist.cpu")
    awk -v n="$name" -v c="$c" -v d="$d" -v mb="$mb" -v cc="$cc" -v dc="$dc" -v runs="$RUNS" -v tick="$TICK" 'BEGIN {
        cs = cc / tick / runs / (mb / 1024); ds = dc / tick / runs / (mb / 1024)
        printf "%-7s cais %6.3f s (%6.1f MB/s)  distribution %6.3f s (%6.1f MB/s)  speedup %.2fx | server cpu/GB cais %.3f s, distribution %.3f s (%.1fx less)\n",
            n, c, mb / c, d, mb / d, d / c, cs, ds, (cs > 0 ? ds / cs : 0) }'
}
echo "medians of $RUNS runs (push/pull: skopeo copy; pull1/pull16: curl clients; push8: curl clients)"
row push "$SIZE_MB"
row pull "$SIZE_MB"
row pull1 "$SIZE_MB"
row pull16 $((SIZE_MB * 16))
row push8 $((SIZE_MB * 8))
echo "rss idle      cais $((CAIS_IDLE / 1024)) MB ($CAIS_IDLE kB)   distribution $((DIST_IDLE / 1024)) MB ($DIST_IDLE kB)"
echo "rss after     cais $((CAIS_AFTER / 1024)) MB   distribution $((DIST_AFTER / 1024)) MB"
echo "rss peak      cais $((CAIS_PEAK / 1024)) MB   distribution $((DIST_PEAK / 1024)) MB   (includes mapped page cache)"
echo "anon after    cais $((CAIS_ANON / 1024)) MB   distribution $((DIST_ANON / 1024)) MB"
