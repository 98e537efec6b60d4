#!/usr/bin/env bash
# Make sure Debian's redis-server is installed: the service tests (tests/redis_server.py) run a
# Redis on a free 127.0.0.1 port for quotas shared between replicas. Installs the Debian/Ubuntu
# package with apt-get when missing; where systemd runs, the package's own service (which
# listens on the default port) is stopped and disabled: the tests never use it.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: redis-server is missing and apt-get is not available; install Redis 6+" \
         "(Debian/Ubuntu: redis-server, Fedora: redis, macOS: brew install redis)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: redis-server is missing; run as root: apt-get install -y redis-server" >&2
        exit 1
    fi
fi
echo "installing redis-server with apt-get ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi
command -v redis-server >/dev/null 2>&1
