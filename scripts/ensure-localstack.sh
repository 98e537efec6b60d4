#!/usr/bin/env bash
# Make sure .venv-localstack holds LocalStack's KMS (host mode, no Docker) for the AWS KMS tests
# and benchmarks. A separate venv: LocalStack pins versions of cryptography and pyOpenSSL that
# the project's own venv must not be held back to. Quick when the stamp file is there.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=".venv-localstack"
# Measured on this project's machines: LocalStack 4.13.1 wants these older pins to run its KMS.
PINS=('localstack-core[runtime]==4.13.1' 'cbor2<6' 'pyopenssl<24.3' 'cryptography<44'
      'service_identity<25')
# The stamp holds the pins, so changing them rebuilds existing venvs.
RECIPE="${PINS[*]}"
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ] && [ -x "$VENV/bin/python" ]; then
    exit 0
fi
PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; set PYTHON to a Python 3.11+ interpreter" >&2
    exit 1
fi
echo "creating $VENV (LocalStack KMS for the AWS KMS tests; about 90 s) ..." >&2
rm -f "$STAMP"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${PINS[@]}"
"$VENV/bin/python" -c 'import localstack.runtime.main' >/dev/null
printf '%s' "$RECIPE" > "$STAMP"
