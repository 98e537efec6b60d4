#!/usr/bin/env bash
# Make sure @sigstore/verify (sigstore-js) is installed for the interop tests: runs `npm ci` in
# tests/integration/interop/js when node_modules is missing or older than package-lock.json.
# @sigstore/verify 4.x declares node >= 22 but works on node 20 (npm prints EBADENGINE
# warnings, which are expected); 3.x cannot read Rekor v2 bundles.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js="$here/tests/integration/interop/js"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is missing; the sigstore-js interop tests need Node.js 20+ and npm" \
             "(Debian/Ubuntu: apt-get install -y nodejs npm; or https://nodejs.org)" >&2
        exit 1
    fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "error: node $(node --version) is too old for @sigstore/verify 4.x; install node 20+" >&2
    exit 1
fi

stamp="$js/node_modules/.package-lock.json"  # npm rewrites it on every install
if [ -f "$stamp" ] && [ ! "$js/package-lock.json" -nt "$stamp" ] \
    && [ -d "$js/node_modules/@sigstore/verify" ]; then
    exit 0
fi
echo "installing @sigstore/verify with npm ci in tests/integration/interop/js ..." >&2
(cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
