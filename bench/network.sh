#!/usr/bin/env bash
# Benchmark cais networking against docker and podman on this machine:
#
#   startup     `run --rm IMG true` on the default bridge and with
#               `--network none`, for every engine, in ONE hyperfine run
#               (what a network namespace, a veth and an address cost)
#   throughput  a bulk TCP transfer with iperf3 (client on the host, server
#               in a container) through a published port on 127.0.0.1 and
#               on the host's own address, for cais and docker, next to
#               plain loopback without containers; Gbit/s medians and the
#               ratio to loopback. Publishing is kernel DNAT in cais, so the
#               goal is to keep at least 90% of loopback throughput.
#
# The server image is made offline: a busybox-static root filesystem plus
# the host's iperf3 and the libraries ldd names.
#
# Needs: hyperfine jq iperf3 busybox-static (apt), a release build (this
# script runs `cargo build --release -p cais`). docker is measured when its
# peer daemon (unix:///run/peer-docker.sock, see ../shared/bench/README.md)
# answers or can be started; podman when `podman version` works.
# Usage: bench/network.sh [RUNS]   (default 20 runs per startup command, and
# RUNS/4, at least 3, 5-second transfers per throughput path)
set -euo pipefail

RUNS=${1:-20}
XFERS=$((RUNS / 4 > 3 ? RUNS / 4 : 3))
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/cais-network-bench.XXXXXX)
DOCKER_SOCK=unix:///run/peer-docker.sock
DAEMON_PID=
DOCKERD_PID=
IPERF_PID=
docker_() { docker -H "$DOCKER_SOCK" "$@"; }
cleanup() {
    set +e
    [ -n "$DAEMON_PID" ] && "$CAIS" -H "unix://$WORK/cais.sock" rm -f bench-iperf >/dev/null 2>&1
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null
    [ "$HAVE_DOCKER" = 1 ] && docker_ rm -f bench-iperf >/dev/null 2>&1
    [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null
    [ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null
    [ "$HAVE_PODMAN" = 1 ] && $PODMAN rm -af >/dev/null 2>&1
    wait 2>/dev/null
    grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r umount 2>/dev/null
    rm -rf "$WORK"
}
HAVE_DOCKER=0
HAVE_PODMAN=0
CAIS=
PODMAN=
trap cleanup EXIT

for tool in hyperfine jq iperf3 busybox; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)" >&2; exit 1; }
done

(cd "$HERE" && cargo build --release -q -p cais)
CAIS="$HERE/target/release/cais"

# ---- images: busybox, and busybox + iperf3 with its libraries.
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{bin,etc,tmp,proc,sys,dev}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
tar -C "$ROOTFS" -cf "$WORK/busybox.tar" .
IPERF=$(command -v iperf3)
cp "$IPERF" "$ROOTFS/bin/iperf3"
for lib in $(ldd "$IPERF" | grep -o '/[^ ]*'); do
    mkdir -p "$ROOTFS$(dirname "$lib")"
    cp -L "$lib" "$ROOTFS$lib"
done
tar -C "$ROOTFS" -cf "$WORK/iperf.tar" .

# ---- engines.
"$CAIS" daemon -H "unix://$WORK/cais.sock" --data-root "$WORK/root" --exec-root "$WORK/run" \
    >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 200); do [ -S "$WORK/cais.sock" ] && break; sleep 0.05; done
CAISC="$CAIS -H unix://$WORK/cais.sock"
$CAISC import "$WORK/busybox.tar" bench-busybox >/dev/null
$CAISC import "$WORK/iperf.tar" bench-iperf >/dev/null

if ! docker_ version >/dev/null 2>&1 && command -v dockerd >/dev/null; then
    dockerd --host "$DOCKER_SOCK" --data-root /var/lib/peer-docker --exec-root /run/peer-docker \
        --pidfile /run/peer-docker.pid --storage-driver overlay2 >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do docker_ version >/dev/null 2>&1 && break; sleep 0.5; done
fi
if docker_ version >/dev/null 2>&1; then
    HAVE_DOCKER=1
    docker_ import "$WORK/busybox.tar" bench-busybox >/dev/null
    docker_ import "$WORK/iperf.tar" bench-iperf >/dev/null
else
    echo "docker: no daemon, not measured" >&2
fi
# podman cannot raise RLIMIT_NOFILE here without this.
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
PODMAN="podman --root $WORK/podman --runroot $WORK/podman-run --storage-driver overlay"
if $PODMAN version >/dev/null 2>&1 && $PODMAN import -q "$WORK/busybox.tar" bench-busybox >/dev/null 2>&1; then
    # crun refuses hybrid cgroup hosts where hugetlb is on cgroup2; runc copes.
    $PODMAN run --rm bench-busybox true >/dev/null 2>&1 || PODMAN="$PODMAN --runtime runc"
    if $PODMAN run --rm bench-busybox true >/dev/null 2>&1; then
        HAVE_PODMAN=1
    else
        echo "podman: cannot run a container here, not measured" >&2
    fi
else
    echo "podman: not measured" >&2
fi

# ---- startup: bridge vs none, one hyperfine run.
cmds=(-n "cais bridge" "$CAISC run --rm bench-busybox true"
      -n "cais none" "$CAISC run --rm --network none bench-busybox true")
if [ "$HAVE_DOCKER" = 1 ]; then
    cmds+=(-n "docker bridge" "docker -H $DOCKER_SOCK run --rm bench-busybox true"
           -n "docker none" "docker -H $DOCKER_SOCK run --rm --network none bench-busybox true")
fi
if [ "$HAVE_PODMAN" = 1 ]; then
    cmds+=(-n "podman bridge" "$PODMAN run --rm --network bridge bench-busybox true"
           -n "podman none" "$PODMAN run --rm --network none bench-busybox true")
fi
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$WORK/startup.json" "${cmds[@]}" >&2

# ---- throughput: XFERS transfers of 5 s per path, median Gbit/s.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }
HOSTADDR=$(hostname -I | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -1 || true)
# Prints one Gbit/s figure per transfer to ADDR:PORT.
measure() {
    local addr=$1 port=$2 i
    # Ready once a connection goes through (the server shrugs it off).
    for _ in $(seq 60); do (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null && break; sleep 0.2; done
    for i in $(seq "$XFERS"); do
        iperf3 -c "$addr" -p "$port" -t 5 -J | jq '.end.sum_received.bits_per_second / 1e9'
    done
}
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f\n", m}'; }
declare -A GBPS
P=$(free_port)
iperf3 -s -p "$P" >/dev/null 2>&1 &
IPERF_PID=$!
GBPS[loopback]=$(measure 127.0.0.1 "$P" | median)
kill "$IPERF_PID"; wait "$IPERF_PID" 2>/dev/null || true; IPERF_PID=
order=(loopback)

P=$(free_port)
$CAISC run -d --name bench-iperf -p "$P:5201" bench-iperf iperf3 -s >/dev/null
GBPS["cais 127.0.0.1"]=$(measure 127.0.0.1 "$P" | median); order+=("cais 127.0.0.1")
if [ -n "$HOSTADDR" ]; then
    GBPS["cais $HOSTADDR"]=$(measure "$HOSTADDR" "$P" | median); order+=("cais $HOSTADDR")
fi
CIP=$($CAISC inspect -f '{{.NetworkSettings.IPAddress}}' bench-iperf)
GBPS["cais bridge ip"]=$(measure "$CIP" 5201 | median); order+=("cais bridge ip")
$CAISC rm -f bench-iperf >/dev/null

if [ "$HAVE_DOCKER" = 1 ]; then
    P=$(free_port)
    docker_ run -d --name bench-iperf -p "$P:5201" bench-iperf iperf3 -s >/dev/null
    GBPS["docker 127.0.0.1"]=$(measure 127.0.0.1 "$P" | median); order+=("docker 127.0.0.1")
    if [ -n "$HOSTADDR" ]; then
        GBPS["docker $HOSTADDR"]=$(measure "$HOSTADDR" "$P" | median); order+=("docker $HOSTADDR")
    fi
    docker_ rm -f bench-iperf >/dev/null
fi

# ---- summary.
echo
echo "run --rm IMG true, medians (ms), $(nproc) CPUs:"
jq -r '.results[] | "  \(.command): \(.median * 1000 | round)"' "$WORK/startup.json"
jq -r '
  .results | map({key: .command, value: .median}) | from_entries as $m
  | ["cais", "docker", "podman"][] as $e
  | select($m["\($e) bridge"] != null)
  | "  \($e): bridge costs \((($m["\($e) bridge"] - $m["\($e) none"]) * 1000) | round) ms over none (\($m["\($e) bridge"] / $m["\($e) none"] * 100 | round / 100)x)"
' "$WORK/startup.json"
if jq -e '.results | map(.command) | index("docker bridge")' "$WORK/startup.json" >/dev/null; then
    jq -r '.results | map({key: .command, value: .median}) | from_entries
      | "  cais bridge vs docker bridge: \(.["cais bridge"] / .["docker bridge"] * 100 | round / 100)x the time"' \
      "$WORK/startup.json"
fi
echo
echo "iperf3 TCP throughput, medians of $XFERS x 5 s (Gbit/s), ratio to loopback:"
for k in "${order[@]}"; do
    awk -v k="$k" -v g="${GBPS[$k]}" -v l="${GBPS[loopback]}" 'BEGIN {printf "  %-22s %6.2f  %4.0f%%\n", k, g, 100 * g / l}'
done
