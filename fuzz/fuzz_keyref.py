"""Target `keyref`: key references (cosign's `--key` syntax), parsed only: no backend is opened.

The input, as text the way Linux hands argv to Python (undecodable bytes as surrogates), goes
through every reference parser: RFC 7512 `pkcs11:` URIs, `awskms://`, `hashivault://`, `file://`
and plain paths, and the redaction applied before a reference reaches an error, a log or an
audit record (which must never raise). A parsed reference's `describe()`
(what logs show) must parse back to the same key. The raw bytes also go to the keyless
profile's PAE parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from dssesign.audit import profile_of, redact_reference
from dssesign.profiles import awskms, keyless, pkcs11, software, vault
from dssesign.sign.signer import redacted_reference

from ._common import ContractViolation, attempt, utf8

NAME = "keyref"
MAX_LEN = 1024

DICTIONARY = (
    "pkcs11:", "token=", "object=", "id=", "serial=", "type=private", "type=public", "slot-id=",
    "manufacturer=", "model=", "x-", "module-path=", "module-name=", "pin-source=", "env:",
    "file:", "pin-value=", "failover-token=", "pool-size=", "allow-extractable=", "awskms://",
    "awskms:///", "alias/", "alias/aws/", "arn:aws:kms:us-east-1:123456789012:key/",
    "mrk-0123456789abcdef0123456789abcdef", "12345678-1234-1234-1234-123456789012", "region=",
    "timeout=", "max-attempts=", "retry-mode=", "hashivault://", "version=", "allow-exportable=",
    "file://", "keyless", "%00", "%ff", "%C2%B2", "\u00b2", "\u0661", "[::1]", ":65536", "@", "#",
    "?", "&", ";", "DSSEv1 ",
)  # fmt: skip


def _same_pkcs11(a: pkcs11.Pkcs11Uri, b: pkcs11.Pkcs11Uri) -> bool:
    fields = ("token", "object", "id", "serial", "module_path", "failover_tokens")
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def _kms_round_trip(kms: awskms.KmsUri) -> None:
    again = attempt(lambda: awskms.parse_uri(kms.describe()))
    if again is None or (again.host, again.key) != (kms.host, kms.key):
        raise ContractViolation("describe", "an awskms URI's describe() does not parse back")


def check(data: bytes) -> None:
    ref = utf8(data)
    for pin_source in (True, False):
        if not isinstance(redacted_reference(ref, pin_source=pin_source), str):
            raise ContractViolation("redaction", "redacted_reference did not return text")
    profile_of(redact_reference(ref))
    uri = attempt(lambda: pkcs11.parse_uri(ref))
    if uri is not None:
        described = uri.describe()
        again = attempt(lambda: pkcs11.parse_uri(described))
        if again is None or not _same_pkcs11(uri, again):
            raise ContractViolation("describe", "a pkcs11 URI's describe() does not parse back")
    for required in (True, False):
        kms = attempt(partial(awskms.parse_uri, ref, key_required=required))
        if kms is not None and kms.key:
            _kms_round_trip(kms)
    transit = attempt(lambda: vault.parse_reference(ref))
    if transit is not None:
        again_transit = attempt(lambda: vault.parse_reference(transit.describe()))
        if again_transit is None or again_transit.name != transit.name:
            raise ContractViolation("describe", "a vault reference's describe() does not parse")
    attempt(lambda: software.path_of_reference(ref))
    attempt(lambda: keyless.parse_pae(data))


def seeds() -> Iterator[bytes]:
    references = (
        "pkcs11:token=dssesign;object=release-key?module-path=/usr/lib/softhsm/libsofthsm2.so"
        "&pin-source=env:DSSESIGN_PIN",
        "pkcs11:token=a%20b;id=%01%02%03;serial=0123;type=private?pool-size=4"
        "&failover-token=backup&failover-token=dr&allow-extractable=yes",
        "pkcs11:object=k;x-vendor=1?pin-source=file:/run/secrets/pin&x-note=ok",
        "pkcs11:token=t?pin-value=1234",
        "PKCS11:Token=t;OBJECT=o?Module-Path=/m.so",
        "awskms:///alias/release",
        "awskms://localhost:4566/12345678-1234-1234-1234-123456789012?region=us-east-1"
        "&timeout=5&max-attempts=3&retry-mode=adaptive",
        "awskms://[::1]:4566/arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
        "awskms://user:pass@host/alias/x",
        "hashivault://release-key?version=3&allow-exportable=true",
        "hashivault://k",
        "file:///etc/dssesign/key.pem",
        "file://relative%20name.pem",
        "keys/cosign.key",
        "C:\\keys\\cosign.key",
        "keyless",
        "unknown-scheme://x/y?pin=1#frag",
    )
    for reference in references:
        yield reference.encode("utf-8")
    yield b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
    yield b"DSSEv1 0  0 "
