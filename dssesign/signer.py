"""Deprecated: moved to `dssesign.sign.signer`; this path goes in the next release."""

import warnings

from .sign.signer import (
    BUILTIN_SCHEMES,
    BUILTIN_WORDS,
    ENTRY_POINT_GROUP,
    Signer,
    SignerOptions,
    load_signer,
    redacted_reference,
    register_path_loader,
    register_scheme,
    register_word,
    registered_schemes,
)

__all__ = [
    "BUILTIN_SCHEMES",
    "BUILTIN_WORDS",
    "ENTRY_POINT_GROUP",
    "Signer",
    "SignerOptions",
    "load_signer",
    "redacted_reference",
    "register_path_loader",
    "register_scheme",
    "register_word",
    "registered_schemes",
]

warnings.warn(
    "dssesign.signer moved to dssesign.sign.signer; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
