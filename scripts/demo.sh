#!/usr/bin/env bash
# `make demo`: the main job on embedded defaults. Three software keys (Ed25519, ECDSA P-256,
# ML-DSA-65) and one key in a SoftHSM2 token (ECDSA P-256, over PKCS#11) sign one SLSA
# provenance v1 statement for a fixture artifact in a single multi-signature DSSE envelope, which is then verified offline against a trust root built
# here; a tampered copy is rejected. Everything happens in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Keys are encrypted with a demo passphrase handed over in the environment, never in argv.
export DSSESIGN_KEY_PASSWORD="demo-passphrase-not-for-production"

echo "== 1. keys"
for alg in ed25519 ecdsa-p256 ml-dsa-65; do
  printf '  %-11s keyid ' "$alg"
  dssesign keygen --algorithm "$alg" --out "$work/$alg"
done


# A fourth key lives in a SoftHSM2 token made for the demo: created non-extractable and
# sensitive on the token, used through PKCS#11. The PIN travels in the environment; only
# softhsm2-util's token set-up takes it on its command line (a throwaway demo token).
bash "$here/scripts/ensure-softhsm.sh"
export SOFTHSM2_CONF="$work/softhsm2.conf"
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" > "$SOFTHSM2_CONF"
export DEMO_HSM_PIN="demo-hsm-pin-not-for-production"
softhsm2-util --init-token --free --label demo-hsm --so-pin "so-$DEMO_HSM_PIN" --pin "$DEMO_HSM_PIN" >/dev/null
hsm_key="pkcs11:token=demo-hsm;object=attest?pin-source=env:DEMO_HSM_PIN"
printf '  %-11s keyid ' "hsm-p256"
dssesign hsm keygen --uri "$hsm_key" --algorithm ecdsa-p256 --out "$work/hsm-p256.pub" | head -1

echo
echo "== 2. statement (SLSA provenance v1) for fixtures/artifacts/hello-1.0.tar.gz"
dssesign statement \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --out "$work/statement.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  predicateType", s["predicateType"]); [print("  subject", d["name"], "sha256:"+d["digest"]["sha256"]) for d in s["subject"]]' "$work/statement.json"

echo
echo "== 3. sign with four keys, two profiles (software, PKCS#11 HSM), at once"
dssesign attest \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --key "$work/ed25519.key" --key "$work/ecdsa-p256.key" --key "$work/ml-dsa-65.key" \
  --key "$hsm_key" \
  --out "$work/hello.intoto.dsse.json"

echo
echo "== 4. the envelope"
python3 - "$work/hello.intoto.dsse.json" <<'PY'
import base64, json, sys
env = json.load(open(sys.argv[1]))
print(f"  payloadType  {env['payloadType']}")
print(f"  payload      {len(base64.b64decode(env['payload']))} bytes (RFC 8785 canonical JSON)")
for s in env["signatures"]:
    print(f"  signature    keyid {s['keyid'][:16]}…  {len(base64.b64decode(s['sig']))} bytes")
PY

echo
echo "== 5. trust root: the four keys, 2 of them must sign, and one must be post-quantum"
dssesign trust-root init --out "$work/trust-root.json" --threshold 2 >/dev/null
for alg in ed25519 ecdsa-p256 ml-dsa-65 hsm-p256; do
  dssesign trust-root add-key "$work/trust-root.json" --public-key "$work/$alg.pub" --label "$alg" >/dev/null
done
dssesign trust-root set-policy "$work/trust-root.json" --hybrid and >/dev/null
dssesign trust-root show "$work/trust-root.json" | sed 's/^/  /'

echo
echo "== 6. verify offline (no network): signatures, policy, and the artifact's digest"
dssesign verify --trust-root "$work/trust-root.json" \
  --artifact "$here/fixtures/artifacts/hello-1.0.tar.gz" --type slsaprovenance1 \
  "$work/hello.intoto.dsse.json" | sed 's/^/  /'

echo
echo "== 7. a tampered copy (one byte of the payload changed) is rejected"
python3 - "$work/hello.intoto.dsse.json" "$work/tampered.json" <<'PY'
import base64, json, sys
env = json.load(open(sys.argv[1]))
payload = bytearray(base64.b64decode(env["payload"]))
payload[payload.index(b"hello-1.0.tar.gz")] ^= 0x20   # hello -> Hello
env["payload"] = base64.b64encode(bytes(payload)).decode()
json.dump(env, open(sys.argv[2], "w"))
PY
if dssesign verify --trust-root "$work/trust-root.json" "$work/tampered.json" 2>&1 | sed 's/^/  /'; then
  echo "  BUG: the tampered envelope verified" >&2
  exit 1
fi
echo "  rejected, as it must be"
