"""Deprecated: moved to `dssesign.sign.multisign`; this path goes in the next release."""

import warnings

from .sign.multisign import (
    MultiProfileSigner,
    SigningContext,
    SigningRecord,
    SigningResult,
    envelope_keyid,
    is_exportable,
)

__all__ = [
    "MultiProfileSigner",
    "SigningContext",
    "SigningRecord",
    "SigningResult",
    "envelope_keyid",
    "is_exportable",
]

warnings.warn(
    "dssesign.multisign moved to dssesign.sign.multisign; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
