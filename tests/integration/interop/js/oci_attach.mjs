// Attach a Sigstore bundle to an image in an OCI registry with @sigstore/oci (sigstore-js, the
// package GitHub's actions/attest pushes attestations with), for dssesign's OCI interop tests.
//
//   node oci_attach.mjs REGISTRY/REPO@sha256:HEX BUNDLE_FILE [PREDICATE_TYPE]
//
// Credentials come from REGISTRY_USERNAME / REGISTRY_PASSWORD (none: an open registry).
// Prints the artifact manifest's descriptor as JSON on stdout; exits 1 if the registry refused,
// 2 on bad usage.
//
// @sigstore/oci 0.7 pushes an OCI image manifest (artifactType and layer: the bundle media
// type, config: the empty descriptor, subject: the image), then falls back to the referrers
// tag schema (an OCI index under tag sha256-HEX) unless the registry answers OCI-Subject AND
// its referrers API. It always speaks plain HTTP to localhost and 127.0.0.1 (and HTTPS to any
// other host, trusting NODE_EXTRA_CA_CERTS), so on this machine it needs a plain-HTTP registry.

import { readFileSync } from 'node:fs';

import { attachArtifactToImage } from '@sigstore/oci';

const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const DIGEST = /^sha256:[0-9a-f]{64}$/;

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node oci_attach.mjs REGISTRY/REPO@sha256:HEX BUNDLE_FILE [PREDICATE_TYPE]\n`
  );
  process.exit(2);
}

function describe(err) {
  const lines = [];
  for (let e = err; e; e = e.cause) {
    lines.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
  return lines.join('\n  caused by: ');
}

const [reference, bundleFile, predicateType] = process.argv.slice(2);
if (!reference || !bundleFile || process.argv.length > 5) {
  usage('wrong number of arguments');
}
const at = reference.lastIndexOf('@');
const imageName = at < 0 ? '' : reference.slice(0, at);
const imageDigest = at < 0 ? '' : reference.slice(at + 1);
if (!imageName || !DIGEST.test(imageDigest)) {
  usage(`not an image reference with a sha256 digest: ${reference}`);
}

const username = process.env.REGISTRY_USERNAME;
const password = process.env.REGISTRY_PASSWORD;
const credentials =
  username || password
    ? { username: username ?? '', password: password ?? '' }
    : undefined;

const annotations = { 'dev.sigstore.bundle.content': 'dsse-envelope' };
if (predicateType) {
  annotations['dev.sigstore.bundle.predicateType'] = predicateType;
}

try {
  const descriptor = await attachArtifactToImage({
    imageName,
    imageDigest,
    artifact: readFileSync(bundleFile),
    mediaType: BUNDLE_MEDIA_TYPE,
    annotations,
    credentials,
    fetchOpts: { timeout: 30000, retry: 0 },
  });
  process.stdout.write(`${JSON.stringify(descriptor)}\n`);
} catch (err) {
  process.stderr.write(`${describe(err)}\n`);
  process.exit(1);
}
