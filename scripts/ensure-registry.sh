#!/usr/bin/env bash
# Make sure Debian's docker-registry (distribution 2.8, /usr/bin/docker-registry) is installed;
# the OCI tests (tests/registry.py) run a real registry on 127.0.0.1. Installs the Debian/Ubuntu
# package with apt-get when missing. The package also enables a service listening on :5000 on
# every interface; the tests never use it (each session starts its own registries on free
# 127.0.0.1 ports with their own config), so where systemd runs it is stopped and disabled.
set -euo pipefail

if [ -x /usr/bin/docker-registry ] || command -v docker-registry >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: docker-registry is missing and apt-get is not available; install the" \
         "CNCF distribution registry 2.8 as docker-registry on PATH" \
         "(Debian/Ubuntu: docker-registry)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: docker-registry is missing; run as root: apt-get install -y docker-registry" >&2
        exit 1
    fi
fi
echo "installing docker-registry with apt-get ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-registry >/dev/null
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi
command -v docker-registry >/dev/null 2>&1
