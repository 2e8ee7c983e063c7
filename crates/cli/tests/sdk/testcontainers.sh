#!/usr/bin/env bash
# Testcontainers for Python (from PyPI, pinned below) against the daemon at
# DOCKER_HOST: testcontainers_check.py builds an image from a busybox
# image the daemon holds, runs it, waits for a log line, execs in it,
# reaches its mapped port and cleans up.
#
# usage: testcontainers.sh WORKDIR
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: testcontainers.sh WORKDIR}
: "${DOCKER_HOST:?DOCKER_HOST names the daemon under test}"
version=4.15.0
python=${SDK_PYTHON:-/usr/bin/python3}
mkdir -p "$work"
venv=$work/venv-testcontainers-$version

exec 9>"$work/.lock-testcontainers"
flock 9
if [ ! -e "$venv/.ready" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" --quiet --disable-pip-version-check install "testcontainers==$version"
    touch "$venv/.ready"
fi
flock -u 9

unset DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONTEXT
export DOCKER_CONFIG=$work/docker-config-testcontainers
mkdir -p "$DOCKER_CONFIG"
# Ryuk, testcontainers' reaper, is an image from Docker Hub: clean-up is
# the context manager's here (and checked).
export TESTCONTAINERS_RYUK_DISABLED=true
exec "$venv/bin/python" "$here/testcontainers_check.py"
