#!/usr/bin/env bash
# Runs the Docker SDK for Python's own integration tests (the `tests/
# integration` of its 7.0.0 sdist, the newest that ships them) against the
# daemon at DOCKER_HOST, as the SDK's maintainers run them against dockerd.
#
# usage: run.sh WORKDIR OUTCOMES [PYTEST ARGUMENTS...]
#
# WORKDIR keeps the virtualenv (Debian's python3, the sdist and the test
# requirements at the versions the sdist pins, installed from PyPI on first
# use) and the offline image. The daemon gets that image, a busybox-static
# root filesystem laid out like the alpine image the tests expect (its
# users, /var/opt), imported with `CMD ["/bin/sh"]` under every name the
# tests use. pytest runs the core files below minus deselected.txt (tests
# that need Docker Hub, a swarm or plugins, fail on dockerd here too, or
# hit a known gap, each with its reason) and writes one
# `OUTCOME NODEID` line per test to OUTCOMES (sdk_outcomes.py). The exit
# status is pytest's: 0 only when every test that ran passed. Further
# arguments go to pytest (`-k attach` runs only some).
#
# DOCKER_TEST_API_VERSION is 1.41, the version the SDK speaks by default
# and the newest dockerd 20.10 serves, so every daemon is asked the same.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: run.sh WORKDIR OUTCOMES}
outcomes=${2:?usage: run.sh WORKDIR OUTCOMES}
shift 2
: "${DOCKER_HOST:?DOCKER_HOST names the daemon under test}"
sdk_version=7.0.0
python=${SDK_PYTHON:-/usr/bin/python3}
mkdir -p "$work"
work=$(cd "$work" && pwd)
venv=$work/venv-$sdk_version
src=$work/docker-$sdk_version

# The core files: everything but swarm services, secrets, configs, nodes,
# plugins and contexts.
files=(
    api_build_test.py api_client_test.py api_container_test.py api_exec_test.py
    api_healthcheck_test.py api_image_test.py api_network_test.py api_volume_test.py
    models_containers_test.py models_images_test.py models_networks_test.py
    models_resources_test.py models_volumes_test.py client_test.py errors_test.py
    regression_test.py
)

# One setup at a time: the test suite and `cargo xtask sdk-compare` share
# WORKDIR.
exec 9>"$work/.lock"
flock 9
if [ ! -e "$venv/.ready" ]; then
    rm -rf "$venv" "$src" "$work/download"
    "$python" -m venv "$venv"
    "$venv/bin/pip" --quiet --disable-pip-version-check download --no-deps \
        --no-binary :all: "docker==$sdk_version" -d "$work/download"
    tar -xzf "$work/download/docker-$sdk_version.tar.gz" -C "$work"
    # The sdist's pins: its requirements, and pytest with pytest-timeout
    # from its test requirements (coverage and the linter are not needed).
    "$venv/bin/pip" --quiet --disable-pip-version-check install \
        -r "$src/requirements.txt" \
        $(grep -E '^(pytest|pytest-timeout)==' "$src/test-requirements.txt")
    "$venv/bin/pip" --quiet --disable-pip-version-check install --no-deps \
        "$work/download/docker-$sdk_version.tar.gz"
    touch "$venv/.ready"
fi

# The offline image: busybox-static and its applets, with the alpine
# image's users and directories the tests rely on.
image=$work/image.tar
if [ ! -e "$image" ]; then
    rootfs=$(mktemp -d "$work/rootfs.XXXXXX")
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,home,var/opt,var/tmp,var/lib,proc,sys,dev}
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
postgres:x:70:70::/var/lib/postgresql:/bin/sh
PASSWD
    cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
wheel:x:10:root
nogroup:x:65533:
nobody:x:65534:
postgres:x:70:
GROUP
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
        -C "$rootfs" -cf "$image.part" .
    rm -rf "$rootfs"
    mv "$image.part" "$image"
fi
flock -u 9

"$venv/bin/python" - "$image" <<'PY'
import sys
import docker
from docker.utils import kwargs_from_env

client = docker.APIClient(version="auto", timeout=120, **kwargs_from_env())
with open(sys.argv[1], "rb") as f:
    client.import_image_from_data(
        f.read(), repository="alpine", tag="3.10", changes=['CMD ["/bin/sh"]']
    )
for repository, tag in [("alpine", "latest"), ("busybox", "latest")]:
    client.tag("alpine:3.10", repository, tag)
cmd = client.inspect_image("busybox:latest")["Config"].get("Cmd")
if cmd != ["/bin/sh"]:
    sys.exit(f"the imported image's Cmd is {cmd!r}, not ['/bin/sh']")
PY

deselect=()
while read -r line; do
    id=${line%%#*}
    id=${id//[[:space:]]/}
    [ -n "$id" ] && deselect+=(--deselect "$id")
done <"$here/deselected.txt"

cd "$src"
# The test session's own client settings only: no TLS or context from the
# caller's environment, and an empty client configuration (the SDK reads
# `detachKeys` and credentials from it).
unset DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONTEXT
export DOCKER_CONFIG=$work/docker-config
mkdir -p "$DOCKER_CONFIG"
# Every deselected test must exist: a renamed one would otherwise run
# nowhere unnoticed.
collected=$("$venv/bin/python" -m pytest -p no:cacheprovider --collect-only -q \
    "${files[@]/#/tests/integration/}" 2>/dev/null)
for ((i = 1; i < ${#deselect[@]}; i += 2)); do
    if ! grep -qxF -- "${deselect[i]}" <<<"$collected"; then
        echo "deselected.txt names a test the suite does not have: ${deselect[i]}" >&2
        exit 2
    fi
done
export DOCKER_TEST_API_VERSION=1.41
export SDK_OUTCOMES=$outcomes
export PYTHONPATH=$here
exec "$venv/bin/python" -m pytest -p sdk_outcomes -p no:cacheprovider \
    --timeout 120 -q -rfE "${deselect[@]}" "$@" "${files[@]/#/tests/integration/}"
