#!/usr/bin/env bash
# Benchmark the node agent: pods started through `cais kube server` (with
# its agent) on a `cais daemon` of their own, driven by the real kubectl.
#
# - start latency: one pod at a time, from invoking `kubectl create` to
#   the pod seen Running by a watch (`kubectl get pods -w`), N times;
#   p50 and p99;
# - a burst: BURST pods in one `kubectl apply`, until all are Running;
# - the server's resident memory (API server and agent are one process)
#   with no pod and with the burst running.
#
# Images are busybox-static imported offline. No peer runs here: there is
# no other Kubernetes on this machine (the anchors are in the issue).
#
# Needs: kubectl, jq, busybox-static.
# Usage: bench/kube-pods.sh [N] [BURST]   (default 100 and 105)
#        CAIS=target/debug/cais bench/kube-pods.sh   (default the release build)
set -euo pipefail

N=${1:-100}
BURST=${2:-105}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CAIS=${CAIS:-$HERE/target/release/cais}
WORK=$(mktemp -d /tmp/cais-kube-bench.XXXXXX)
SOCK=unix://$WORK/api.sock
PIDS=()
DAEMON=
cleanup() {
    # The server, agent and watch first; then the pods' containers through
    # the daemon; then the daemon, which removes its networks on SIGTERM.
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$DAEMON" ]; then
        for id in $("$CAIS" -H "$SOCK" ps -aq 2>/dev/null); do
            "$CAIS" -H "$SOCK" rm -f "$id" >/dev/null 2>&1 || true
        done
        kill "$DAEMON" 2>/dev/null || true
        wait "$DAEMON" 2>/dev/null || true
    fi
    for ns in "$WORK"/run/netns/*; do umount "$ns" 2>/dev/null || true; done
    umount -R "$WORK/root" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in kubectl jq busybox; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[ -x "$CAIS" ] || { echo "no $CAIS (cargo build --release -p cais, or set CAIS)" >&2; exit 1; }

"$CAIS" daemon -H "$SOCK" --data-root "$WORK/root" --exec-root "$WORK/run" \
    >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 200); do [ -S "$WORK/api.sock" ] && break; sleep 0.05; done

mkdir -p "$WORK/rootfs/bin"
cp "$(command -v busybox)" "$WORK/rootfs/bin/"
for a in $("$WORK/rootfs/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$WORK/rootfs/bin/$a"
done
tar -C "$WORK/rootfs" -cf "$WORK/bb.tar" .
"$CAIS" -H "$SOCK" import "$WORK/bb.tar" bench-busybox:1 >/dev/null

"$CAIS" kube server --data-dir "$WORK/kube" --listen 127.0.0.1:0 \
    --write-kubeconfig "$WORK/kubeconfig" --engine-host "$SOCK" \
    --node-name bench --pod-network "bench-$$" --agent-port 0 \
    >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
export KUBECONFIG=$WORK/kubeconfig KUBECACHEDIR=$WORK/cache
for _ in $(seq 600); do
    kubectl get node bench >/dev/null 2>&1 && break
    sleep 0.1
done
kubectl wait --for=condition=Ready node/bench --timeout=60s >/dev/null

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
pod() {
    printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  nodeName: bench\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: bench-busybox:1\n    command: ["sleep", "100000"]\n' "$1"
}
now() { date +%s%N; }

# One watch, reporting when each pod is first seen Running.
kubectl get pods -w -o json |
    jq --unbuffered -r 'select(.status.phase == "Running") | .metadata.name' |
    while read -r name; do
        [ -e "$WORK/running.$name" ] || now >"$WORK/running.$name"
    done &
PIDS+=($!)
sleep 1

RSS_IDLE=$(rss "$SERVER")
for i in $(seq "$N"); do
    name=p$i
    now >"$WORK/created.$name"
    pod "$name" | kubectl create -f - >/dev/null
    until [ -e "$WORK/running.$name" ]; do sleep 0.005; done
done
for i in $(seq "$N"); do
    echo $(( ($(cat "$WORK/running.p$i") - $(cat "$WORK/created.p$i")) / 1000000 ))
done | sort -n >"$WORK/latencies"
p50=$(awk -v n="$N" 'NR == int((n + 1) / 2)' "$WORK/latencies")
p99=$(awk -v n="$N" 'NR == int(n * 0.99 + 0.999)' "$WORK/latencies")
kubectl delete pods --all --wait=true --timeout=300s >/dev/null

start=$(now)
for i in $(seq "$BURST"); do pod "b$i"; echo ---; done | kubectl apply -f - >/dev/null
until [ "$(ls "$WORK" | grep -c '^running\.b')" -ge "$BURST" ]; do sleep 0.05; done
burst_ms=$(( ($(now) - start) / 1000000 ))
RSS_BURST=$(rss "$SERVER")
kubectl delete pods --all --wait=true --timeout=300s >/dev/null

echo "binary: $CAIS"
echo "pod start, kubectl create -> Running seen by a watch, $N pods one at a time:"
echo "  p50 ${p50} ms, p99 ${p99} ms, max $(tail -1 "$WORK/latencies") ms"
echo "$BURST pods in one apply until all Running: ${burst_ms} ms"
echo "server + agent resident memory: ${RSS_IDLE} kB idle, ${RSS_BURST} kB with $BURST pods"
