#!/usr/bin/env bash
# Make sure SoftHSM2 (softhsm2-util and libsofthsm2.so) is installed; the PKCS#11 tests and
# benchmarks need a real module. Installs the Debian/Ubuntu package with apt-get when missing.
set -euo pipefail

if command -v softhsm2-util >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: softhsm2-util is missing and apt-get is not available; install SoftHSM2" \
         "(Debian/Ubuntu: softhsm2, Fedora: softhsm, macOS: brew install softhsm)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: softhsm2-util is missing; run as root: apt-get install -y softhsm2" >&2
        exit 1
    fi
fi
echo "installing softhsm2 with apt-get ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq softhsm2 >/dev/null
command -v softhsm2-util >/dev/null 2>&1
