#!/usr/bin/env bash
# `make demo`: the main job on embedded defaults. Four signing profiles sign one SLSA
# provenance v1 statement for a fixture artifact into a single multi-signature DSSE envelope:
# three software keys (Ed25519, ECDSA P-256, ML-DSA-65), a SoftHSM2 token key over PKCS#11, a
# Vault transit key on a local OpenBao dev server, and Sigstore keyless against the local test
# instance (test CA, CT log, Rekor-style log). One Sigstore bundle per signature is written
# beside it. Everything is then verified offline against a trust root built here, and a
# tampered copy is rejected. Later steps: trusted time, dual control, an organisation CA, a
# signed verification summary, and a container image attested in an OCI registry (Debian's
# docker-registry). Servers listen on 127.0.0.1 only; files live in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
services=""
cleanup() {
  if [ -n "$services" ]; then kill "$services" 2>/dev/null || true; wait "$services" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# OpenBao (Vault transit) and the local Sigstore instance, in the background. Their throwaway
# tokens arrive in an environment file, never in argv.
python3 "$here/scripts/demo_services.py" "$work/services" &
services=$!

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
dssesign hsm keygen --uri "$hsm_key" --algorithm ecdsa-p256 --out "$work/hsm-p256.pub" | sed -n 1p

for _ in $(seq 1 300); do [ -f "$work/services/services.env" ] && break; sleep 0.1; done
[ -f "$work/services/services.env" ] || { echo "error: demo services did not start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$work/services/services.env"

# A sixth key is a Vault transit key, created non-exportable on the OpenBao dev server.
printf '  %-11s keyid ' "vault-p256"
dssesign vault create-key --uri hashivault://demo-attest --key-type ecdsa-p256 \
  --out "$work/vault-p256.pub" | sed -n 1p
echo "  keyless     an ephemeral key, certified by Fulcio for $DEMO_SUBJECT at signing time"

echo
echo "== 2. statement (SLSA provenance v1) for fixtures/artifacts/hello-1.0.tar.gz"
dssesign statement \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --out "$work/statement.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  predicateType", s["predicateType"]); [print("  subject", d["name"], "sha256:"+d["digest"]["sha256"]) for d in s["subject"]]' "$work/statement.json"

echo
echo "== 3. sign with six keys and four profiles (software, PKCS#11 HSM, Vault transit, keyless) at once"
dssesign attest \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --key "$work/ed25519.key" --key "$work/ecdsa-p256.key" --key "$work/ml-dsa-65.key" \
  --key "$hsm_key" --key hashivault://demo-attest --key keyless \
  --out "$work/hello.intoto.dsse.json" --bundle-dir "$work/bundles" | sed 's/^/  /'

echo
echo "== 4. the envelope"
python3 - "$work/hello.intoto.dsse.json" <<'PY'
import base64, json, sys
env = json.load(open(sys.argv[1]))
print(f"  payloadType  {env['payloadType']}")
print(f"  payload      {len(base64.b64decode(env['payload']))} bytes (RFC 8785 canonical JSON)")
for s in env["signatures"]:
    keyid = f"keyid {s['keyid'][:16]}…" if s.get("keyid") else "keyless (certificate in its bundle)"
    print(f"  signature    {keyid:<36} {len(base64.b64decode(s['sig']))} bytes")
PY
echo "  one Sigstore bundle v0.3 per signature:"
(cd "$work/bundles" && ls -1 | sed 's/^/    /')

echo
echo "== 5. trust root: five keys and one keyless identity; 3 must sign, one of them post-quantum"
dssesign trust-root init --out "$work/trust-root.json" --threshold 3 >/dev/null
for alg in ed25519 ecdsa-p256 ml-dsa-65 hsm-p256 vault-p256; do
  dssesign trust-root add-key "$work/trust-root.json" --public-key "$work/$alg.pub" --label "$alg" >/dev/null
done
dssesign trust-root set-sigstore-root "$work/trust-root.json" --trusted-root "$DEMO_TRUSTED_ROOT" >/dev/null
dssesign trust-root add-identity "$work/trust-root.json" \
  --issuer "$DEMO_ISSUER" --subject "$DEMO_SUBJECT" --label release-bot >/dev/null
dssesign trust-root set-policy "$work/trust-root.json" --hybrid and >/dev/null
dssesign trust-root show "$work/trust-root.json" | sed 's/^/  /'

echo
echo "== 6. verify offline (no network): signatures, certificate chain and log proofs, policy, the artifact's digest"
dssesign verify --trust-root "$work/trust-root.json" \
  --artifact "$here/fixtures/artifacts/hello-1.0.tar.gz" --type slsaprovenance1 \
  "$work/hello.intoto.dsse.json" "$work"/bundles/*.sigstore.json | sed 's/^/  /'

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

echo
echo "== 8. trusted time: an attestation that outlives its key"
# A trust root for the release key alone, which also trusts the demo's RFC 3161 TSA.
dssesign trust-root init --out "$work/release-root.json" >/dev/null
dssesign trust-root add-key "$work/release-root.json" --public-key "$work/ed25519.pub" --label release >/dev/null
dssesign trust-root add-tsa "$work/release-root.json" --certificate-chain "$DEMO_TSA_CHAIN" \
  --name demo-tsa --label "demo TSA (OpenSSL ts)" >/dev/null
echo "  signed with a timestamp from $DEMO_TSA_URL, and once without:"
dssesign attest \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --key "$work/ed25519.key" --out "$work/stamped.json" --bundle-dir "$work/stamped" \
  --tsa "$DEMO_TSA_URL" --trust-root "$work/release-root.json" 2>&1 | sed 's/^/    /'
dssesign attest \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --key "$work/ed25519.key" --out "$work/unstamped.json" >/dev/null 2>&1
echo "  the release key is rotated to a new key with no transition: its deadline is now"
dssesign keygen --algorithm ed25519 --out "$work/release-2" >/dev/null
dssesign trust-root rotate "$work/release-root.json" --from-key "$work/ed25519.key" \
  --to-public-key "$work/release-2.pub" --transition-days 0 >/dev/null
sleep 1.1   # one second past the deadline
echo "  the timestamped attestation still verifies, judged at its signing time:"
dssesign verify --trust-root "$work/release-root.json" --require-timestamp \
  "$work/stamped.json" "$work"/stamped/*.sigstore.json | sed 's/^/    /'
echo "  the one without a timestamp is refused:"
if dssesign verify --trust-root "$work/release-root.json" "$work/unstamped.json" 2>&1 | sed 's/^/    /'; then
  echo "  BUG: the un-timestamped envelope of a rotated-out key verified" >&2
  exit 1
fi

echo
echo "== 9. dual control: the build signs, a reviewer countersigns later, both roles are required"
dssesign trust-root init --out "$work/teams-root.json" >/dev/null
dssesign trust-root add-key "$work/teams-root.json" --public-key "$work/ecdsa-p256.pub" --label ci >/dev/null
dssesign trust-root add-key "$work/teams-root.json" --public-key "$work/ml-dsa-65.pub" --label reviewer >/dev/null
ci_keyid="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][0]["keyid"])' "$work/teams-root.json")"
rev_keyid="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][1]["keyid"])' "$work/teams-root.json")"
dssesign trust-root add-role "$work/teams-root.json" --name build --keyid "$ci_keyid" --threshold 1 >/dev/null
dssesign trust-root add-role "$work/teams-root.json" --name review --keyid "$rev_keyid" --threshold 1 >/dev/null
dssesign trust-root set-policy "$work/teams-root.json" --threshold 1 --require-role build --require-role review >/dev/null
dssesign attest \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --key "$work/ecdsa-p256.key" --out "$work/built.json" >/dev/null 2>&1
echo "  the build's signature alone:"
if dssesign verify --trust-root "$work/teams-root.json" "$work/built.json" 2>&1 | sed 's/^/    /'; then
  echo "  BUG: one team's signature met a two-role policy" >&2
  exit 1
fi
echo "  the reviewer countersigns (checked against the trust root first):"
dssesign countersign "$work/built.json" --trust-root "$work/teams-root.json" \
  --key "$work/ml-dsa-65.key" --out "$work/reviewed.json" 2>&1 | sed 's/^/    /'
dssesign verify --trust-root "$work/teams-root.json" "$work/reviewed.json" | sed 's/^/    /'

echo
echo "== 10. organisation PKI: the HSM key gets a code-signing certificate from the company CA"
# The CA is OpenSSL's here (any CA will do): the HSM signs its own CSR, the key never leaves it.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/O=Example Corp/CN=Example Code Signing CA" -keyout "$work/ca.key" -out "$work/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" 2>/dev/null
dssesign hsm csr --uri "$hsm_key" --subject "CN=release signing,O=Example Corp" \
  --out "$work/release.csr" >/dev/null
printf 'basicConstraints=critical,CA:FALSE\nauthorityKeyIdentifier=keyid\n' >"$work/leaf.ext"
openssl x509 -req -in "$work/release.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 7 -copy_extensions copy -extfile "$work/leaf.ext" \
  -out "$work/release.crt" 2>/dev/null
echo "  issued: $(openssl x509 -in "$work/release.crt" -noout -subject -ext extendedKeyUsage | tr '\n' ' ')"
dssesign trust-root init --out "$work/corp-root.json" >/dev/null
dssesign trust-root add-ca "$work/corp-root.json" --certificate "$work/ca.pem" --name corp-ca >/dev/null
dssesign trust-root add-identity "$work/corp-root.json" --ca corp-ca \
  --subject-dn "CN=release signing,O=Example Corp" --name release >/dev/null
dssesign trust-root add-tsa "$work/corp-root.json" --certificate-chain "$DEMO_TSA_CHAIN" \
  --name demo-tsa >/dev/null
dssesign attest \
  --subject "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  --predicate "$here/fixtures/predicates/slsa-provenance-v1.json" --type slsaprovenance1 \
  --key "$hsm_key" --certificate "$work/release.crt" --tsa "$DEMO_TSA_URL" \
  --trust-root "$work/corp-root.json" --out "$work/certified.json" --bundle-dir "$work/certified" \
  2>&1 | sed 's/^/    /'
echo "  verified by the chain to the CA, at the signature's RFC 3161 time:"
dssesign verify --trust-root "$work/corp-root.json" \
  "$work/certified.json" "$work"/certified/*.sigstore.json | sed 's/^/    /'

echo
echo "== 11. a signed verification summary (SLSA VSA) of that verdict, for whoever comes next"
dssesign verify --trust-root "$work/corp-root.json" \
  --artifact "$here/fixtures/artifacts/hello-1.0.tar.gz" \
  "$work/certified.json" "$work"/certified/*.sigstore.json \
  --emit-vsa "$work/hello.vsa.json" --vsa-key "$work/ed25519.key" \
  --resource-uri "https://example.com/hello-1.0.tar.gz" --verified-level SLSA_BUILD_LEVEL_2 \
  >/dev/null
dssesign trust-root init --out "$work/vsa-root.json" >/dev/null
dssesign trust-root add-key "$work/vsa-root.json" --public-key "$work/ed25519.pub" --label verifier >/dev/null
dssesign verify --trust-root "$work/vsa-root.json" --type vsa \
  --artifact "$here/fixtures/artifacts/hello-1.0.tar.gz" "$work/hello.vsa.json" | sed 's/^/    /'

echo
echo "== 12. a container image: attest it in its registry (cosign's layout), verify it from there and offline"
# Registry credentials come from a docker config.json, TLS trust from SSL_CERT_FILE: never argv.
export DOCKER_CONFIG="$DEMO_DOCKER_CONFIG" SSL_CERT_FILE="$DEMO_REGISTRY_CA"
unset REQUESTS_CA_BUNDLE
dssesign attest --image "$DEMO_IMAGE" --key "$work/ed25519.key" --type cyclonedx \
  --predicate "$here/fixtures/sbom/dssesign-venv.cdx.json" --out "$work/image.dsse.json" \
  --bundle-dir "$work/image-bundles" 2>&1 | sed 's/^/    /'
dssesign verify --image "$DEMO_IMAGE" --trust-root "$work/vsa-root.json" --type cyclonedx \
  | sed 's/^/    /'
dssesign download --image "$DEMO_IMAGE" --out "$work/image-attestations" | sed 's/^/    /'
echo "  the same, offline (no registry):"
dssesign verify --trust-root "$work/vsa-root.json" --type cyclonedx \
  "$work"/image-attestations/*.dsse.json "$work"/image-attestations/*.sigstore.json \
  | sed 's/^/    /'

