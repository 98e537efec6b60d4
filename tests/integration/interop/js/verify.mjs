// Verify Sigstore bundles with @sigstore/verify (the sigstore-js verifier), for dssesign's
// interop tests. Offline: the trust material comes from files, never from TUF or the network.
//
// One bundle:
//   node verify.mjs --bundle B --key KEY.pem
//   node verify.mjs --bundle B --trusted-root trusted_root.json --identity SAN --issuer URL
// Many bundles in one node start (what the tests use; node takes ~0.1 s to start):
//   node verify.mjs --batch < jobs.json    jobs = [{"bundle": ..., "key": ...}, ...]
// Job fields: bundle (path), key (PEM SPKI path) | trustedRoot (path) + identity + issuer,
// or trustedRoot + certificate: true (+ optional identity, a SAN) for a bundle whose
// certificate comes from an organisation CA listed under certificateAuthorities (no Fulcio
// issuer extension, so no issuer in the policy),
// optional tlogThreshold / ctlogThreshold / timestampThreshold / tsaThreshold (integers).
// A keyed job may give trustedRoot too: its timestampAuthorities then judge the bundle's
// RFC 3161 tokens (the key still comes from "key").
// Keyed jobs default all three thresholds to 0 (a keyed bundle without a log has no
// timestamps) unless tsaThreshold is given; keyless jobs use @sigstore/verify's defaults
// (1 each). @sigstore/verify 4.x reads tsaThreshold as a deprecated alias of
// timestampThreshold (which counts TSA tokens and tlog SETs together).
// Prints one JSON result per job ({"ok": true, ...} or {"ok": false, "code", "error"}),
// a list in batch mode; exits 0 if every job verified, 1 if any failed, 2 on bad usage.

import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

const EMPTY_ROOT = {
  certificateAuthorities: [],
  timestampAuthorities: [],
  tlogs: [],
  ctlogs: [],
};

function readJSON(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

// The key as a verifier that trusts it would index it: base64 SHA-256 of its SPKI DER,
// computed here from the PEM, independently of the hint dssesign wrote into the bundle.
function keyring(pemPath) {
  const der = createPublicKey(readFileSync(pemPath)).export({ type: 'spki', format: 'der' });
  const hint = createHash('sha256').update(der).digest('base64');
  return { hint, keys: { [hint]: { rawBytes: der } } };
}

function verifyJob(job) {
  if (typeof job.bundle !== 'string') throw new UsageError('job without "bundle"');
  const keyed = typeof job.key === 'string';
  if (!keyed && typeof job.trustedRoot !== 'string') {
    throw new UsageError('give "key" or "trustedRoot" (+ "identity", "issuer")');
  }
  const fallback = keyed ? 0 : undefined;
  const options = {
    tlogThreshold: job.tlogThreshold ?? fallback,
    ctlogThreshold: job.ctlogThreshold ?? fallback,
    // Left unset when tsaThreshold is given, so that is the one @sigstore/verify reads.
    timestampThreshold:
      job.timestampThreshold ?? (job.tsaThreshold === undefined ? fallback : undefined),
    tsaThreshold: job.tsaThreshold,
  };
  let expectedHint;
  try {
    let material;
    if (keyed) {
      const { hint, keys } = keyring(job.key);
      expectedHint = hint;
      const root = job.trustedRoot === undefined ? EMPTY_ROOT : readJSON(job.trustedRoot);
      material = toTrustMaterial(TrustedRoot.fromJSON(root), keys);
    } else {
      material = toTrustMaterial(TrustedRoot.fromJSON(readJSON(job.trustedRoot)));
    }
    const bundle = bundleFromJSON(readJSON(job.bundle));
    const entity = toSignedEntity(bundle);
    let policy;
    if (job.certificate === true) {
      policy = job.identity === undefined ? undefined : { subjectAlternativeName: job.identity };
    } else if (!keyed) {
      policy = { subjectAlternativeName: job.identity, extensions: { issuer: job.issuer } };
    }
    const signer = new Verifier(material, options).verify(entity, policy);
    return {
      ok: true,
      bundle: job.bundle,
      keyHint: expectedHint,
      identity: signer.identity
        ? {
            subjectAlternativeName: signer.identity.subjectAlternativeName,
            issuer: signer.identity.extensions?.issuer,
          }
        : undefined,
    };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    return {
      ok: false,
      bundle: job.bundle,
      code: error.code ?? error.name ?? 'ERROR',
      error: String(error.message ?? error),
      fields: error.fields,
    };
  }
}

class UsageError extends Error {}

function parseArgs(argv) {
  const job = {};
  const names = {
    '--bundle': 'bundle',
    '--key': 'key',
    '--trusted-root': 'trustedRoot',
    '--identity': 'identity',
    '--issuer': 'issuer',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) throw new UsageError(`bad argument ${argv[i]}`);
    job[name] = argv[i + 1];
  }
  return job;
}

function main() {
  const argv = process.argv.slice(2);
  try {
    if (argv.length === 1 && argv[0] === '--batch') {
      const jobs = JSON.parse(readFileSync(0, 'utf8'));
      if (!Array.isArray(jobs)) throw new UsageError('--batch expects a JSON list of jobs');
      const results = jobs.map(verifyJob);
      process.stdout.write(JSON.stringify(results) + '\n');
      return results.every((r) => r.ok) ? 0 : 1;
    }
    const result = verifyJob(parseArgs(argv));
    process.stdout.write(JSON.stringify(result) + '\n');
    return result.ok ? 0 : 1;
  } catch (error) {
    process.stderr.write(`error: ${error.message}\n`);
    return 2;
  }
}

process.exitCode = main();
