"""Countersigning: who may still sign an existing envelope, and the bundles of what was added.

Dual control means a second person adds a signature to an envelope made earlier, elsewhere.
`MultiProfileSigner.countersign` signs; this module holds what it and the CLI need around that:

- `check_countersigners` refuses a key that already signed. keyids are only hints, so besides an
  equal keyid every earlier signature is tried against every new signer's public key: one
  that verifies means that key has signed (under whatever keyid string it was given then).
- `signature_bundle_names` names the bundle of every signature of an envelope as
  `--bundle-dir` does (`bundles.bundle_names`) but from the envelope alone, so bundles of
  appended (or merged) signatures are named as if the whole envelope had been signed at once:
  ``STEM.<keyid16>.sigstore.json``, and ``STEM.keyless-<n>.sigstore.json`` for the n-th
  signature with an empty keyid.
- `appended_bundles` builds bundles for the signatures a countersign added, and only those.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.dsse import Envelope
from ..errors import ConfigError
from ..limits import DEFAULT_LIMITS, Limits, exceeded
from .bundles import BUNDLE_SUFFIX, BundleFile, bundles_for
from .signer import Signer

if TYPE_CHECKING:
    from .multisign import SigningResult

#: A keyid that may go into a file name: what dssesign writes (lowercase hex SHA-256).
_NAMEABLE_KEYID = re.compile(r"[0-9a-f]{16,128}")
_KEYID_PREFIX = 16


def check_countersigners(
    envelope: Envelope,
    signers: Sequence[Signer],
    keyids: Sequence[str] | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Refuse (ConfigError) a signer whose key already signed `envelope`, or too many signatures.

    `keyids[i]` is the keyid signer i's signature will carry (default: its key's keyid).
    Costs one verification per (earlier signature, new signer) pair, bounded by
    `limits.max_signatures`.
    """
    total = len(envelope.signatures) + len(signers)
    if total > limits.max_signatures:
        raise ConfigError(
            f"countersign: {len(envelope.signatures)} + {len(signers)} signatures exceed "
            f"{exceeded('max_signatures', limits.max_signatures)}"
        )
    keyids = [s.keyid for s in signers] if keyids is None else list(keyids)
    message = envelope.pae()
    for position, signature in enumerate(envelope.signatures):
        for signer, keyid in zip(signers, keyids, strict=True):
            same_keyid = bool(signature.keyid) and signature.keyid in (keyid, signer.keyid)
            if same_keyid or signer.public_key.verify(signature.sig, message):
                how = "keyid" if same_keyid else "public key, under another keyid"
                raise ConfigError(
                    f"key {signer.keyid[:16]} ({_reference(signer)}) already signed this "
                    f"envelope (signature {position + 1}, same {how}): a key counts once"
                )


def signature_bundle_names(envelope: Envelope, stem: str) -> list[str | None]:
    """The bundle file name of each signature of `envelope`, as `--bundle-dir` names them.

    None for a signature whose keyid cannot name a file (not lowercase hex, as another tool
    may write): no bundle is looked for or written for it.
    """
    keyed = [s.keyid[:_KEYID_PREFIX] for s in envelope.signatures if _nameable(s.keyid)]
    full_names = len(set(keyed)) != len(keyed)
    names: list[str | None] = []
    keyless = 0
    for signature in envelope.signatures:
        if not signature.keyid:
            keyless += 1
            names.append(f"{stem}.keyless-{keyless}{BUNDLE_SUFFIX}")
        elif _nameable(signature.keyid):
            label = signature.keyid if full_names else signature.keyid[:_KEYID_PREFIX]
            names.append(f"{stem}.{label}{BUNDLE_SUFFIX}")
        else:
            names.append(None)
    return names


def appended_names(result: SigningResult, stem: str) -> list[str]:
    """The bundle file names of the signatures `result` made, in order (checked before use)."""
    names = signature_bundle_names(result.envelope, stem)[result.first :]
    if any(name is None for name in names):  # pragma: no cover - our keyids are hex or ""
        raise ConfigError("a new signature has a keyid that cannot name a bundle file")
    return [name for name in names if name is not None]


def appended_bundles(result: SigningResult, stem: str) -> list[BundleFile]:
    """One bundle per signature `result` made (after `countersign`: only the appended ones).

    Built by `bundles.bundles_for` over the envelope of the new signatures, then renamed so a
    keyless one is numbered among every keyless signature of the whole envelope.
    """
    files = bundles_for(result.made(), result.signers, stem, result.timestamps)
    names = appended_names(result, stem)
    return [dataclasses.replace(f, name=n) for f, n in zip(files, names, strict=True)]


def _nameable(keyid: str) -> bool:
    return bool(_NAMEABLE_KEYID.fullmatch(keyid))


def _reference(signer: Signer) -> str:
    reference = getattr(signer, "reference", None)
    return reference if isinstance(reference, str) else type(signer).__name__
