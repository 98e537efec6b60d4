"""Every bound dssesign enforces on untrusted input, in one place.

The defaults suit real inputs (container-image SBOMs of 50,000 components fit); a site that
needs more raises a bound for its processes with ``DSSESIGN_LIMITS`` (for example
``DSSESIGN_LIMITS=max_json_bytes=268435456,max_subjects=50000``), a library caller by passing
``limits=Limits(...)``. Every refusal names the bound it hit and says how to raise it
(`exceeded`). Signer and verifier should agree: an envelope signed under raised limits is
refused by a verifier on the defaults.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Final

MiB = 1024 * 1024

#: Environment variable that raises (or lowers) bounds: ``name=value[,name=value...]``.
LIMITS_ENV: Final = "DSSESIGN_LIMITS"


@dataclass(frozen=True)
class Limits:
    """Bounds applied when reading envelopes, statements and predicates."""

    #: Decoded DSSE payload size.
    max_payload_bytes: int = 32 * MiB
    #: Signatures accepted in one envelope.
    max_signatures: int = 64
    #: Size of one decoded signature (ML-DSA-87 is 4627 bytes; RSA-4096 is 512).
    max_signature_bytes: int = 8192
    #: Length of a keyid hint.
    max_keyid_chars: int = 256
    #: Length of a payloadType.
    max_payload_type_chars: int = 1024
    #: Nesting depth of any JSON document we parse.
    max_json_depth: int = 64
    #: Size of a JSON document (envelope, statement, predicate) read from disk.
    max_json_bytes: int = 64 * MiB
    #: Items in any one JSON array (components of an SBOM, packages, ...).
    max_array_items: int = 1_000_000
    #: Subjects in one Statement.
    max_subjects: int = 10_000
    #: Lines of one JSON Lines file of attestations (``.intoto.jsonl``).
    max_jsonl_lines: int = 10_000
    #: Size of one JSON Lines file of attestations (each line is also held to max_json_bytes).
    max_jsonl_bytes: int = 256 * MiB
    #: Size of one OCI manifest or index read from a registry (the OCI spec's 4 MiB).
    max_manifest_bytes: int = 4 * MiB
    #: Referrers (and legacy attestation layers) of one image considered when verifying.
    max_referrers: int = 256

    @classmethod
    def from_environment(cls, value: str | None = None) -> Limits:
        """Defaults changed by ``DSSESIGN_LIMITS`` (or `value`); ValueError naming what is wrong."""
        text = os.environ.get(LIMITS_ENV, "") if value is None else value
        changes: dict[str, int] = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, number = item.partition("=")
            name = name.strip()
            if not sep or name not in names:
                raise ValueError(
                    f"{LIMITS_ENV}: {item[:80]!r} is not name=value with a name among "
                    + ", ".join(sorted(names))
                )
            try:
                changes[name] = int(number.strip())
            except ValueError:
                raise ValueError(f"{LIMITS_ENV}: {name} must be a whole number") from None
            if changes[name] < 1:
                raise ValueError(f"{LIMITS_ENV}: {name} must be at least 1")
        return cls(**changes)


def exceeded(name: str, value: int | None = None) -> str:
    """What to say after "... exceeds the limit": the bound's name and how to raise it."""
    shown = f"{value}" if value is not None else f"{getattr(DEFAULT_LIMITS, name)}"
    return (
        f"the limit of {shown} (Limits.{name}: raise it with {LIMITS_ENV}={name}=N, "
        f"or pass limits=Limits({name}=N))"
    )


def _from_environment() -> tuple[Limits, str | None]:
    try:
        return Limits.from_environment(), None
    except ValueError as exc:
        return Limits(), str(exc)


#: The bounds every parser uses unless given others; ENVIRONMENT_ERROR says why DSSESIGN_LIMITS
#: could not be used (the CLI then refuses to run: exit 2), None when it was.
DEFAULT_LIMITS, ENVIRONMENT_ERROR = _from_environment()
