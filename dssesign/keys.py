"""Deprecated: moved to `dssesign.core.keys`; this path goes in the next release."""

import warnings

from .core.keys import (
    ALGORITHMS,
    ECDSA_P256,
    ECDSA_P384,
    ED25519,
    ML_DSA_65,
    RSA_PSS_3072,
    RSA_PSS_4096,
    Algorithm,
    PublicKey,
    algorithm_of,
    get_algorithm,
    keyid_of_spki,
    load_public_key,
    pss_padding,
    public_key_hint,
)

__all__ = [
    "ALGORITHMS",
    "ECDSA_P256",
    "ECDSA_P384",
    "ED25519",
    "ML_DSA_65",
    "RSA_PSS_3072",
    "RSA_PSS_4096",
    "Algorithm",
    "PublicKey",
    "algorithm_of",
    "get_algorithm",
    "keyid_of_spki",
    "load_public_key",
    "pss_padding",
    "public_key_hint",
]

warnings.warn(
    "dssesign.keys moved to dssesign.core.keys; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
