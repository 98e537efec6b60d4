"""Deprecated: moved to `dssesign.verify.bundles`; this path goes in the next release."""

import warnings

from .verify.bundles import (
    BUNDLE_MEDIA_TYPES,
    KeylessSigner,
    ParsedBundle,
    certificate_issuers,
    certificate_sans,
    check_trusted_root,
    is_bundle_document,
    parse_bundle,
    verify_keyed,
    verify_keyless,
)

__all__ = [
    "BUNDLE_MEDIA_TYPES",
    "KeylessSigner",
    "ParsedBundle",
    "certificate_issuers",
    "certificate_sans",
    "check_trusted_root",
    "is_bundle_document",
    "parse_bundle",
    "verify_keyed",
    "verify_keyless",
]

warnings.warn(
    "dssesign.bundle_verify moved to dssesign.verify.bundles"
    "; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
