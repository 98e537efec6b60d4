"""RFC 3161 trusted time: the TSAs a trust root names, asking them, and judging their tokens.

A token proves when a signature existed, so a signature keeps verifying after its key was
rotated, expired or revoked. This layer depends only on errors and codes (and pyca /
rfc3161-client) and holds no network code: asking a TSA is signing's job (`sign.timestamps`).
"""

from __future__ import annotations

from .authority import MAX_CHAIN_CERTIFICATES, MAX_PEM_BYTES, TimestampAuthority, load_pem_chain
from .verify import MAX_TIMESTAMPS, MAX_TOKEN_BYTES, VerifiedTime, verify_token, verify_tokens

__all__ = [
    "MAX_CHAIN_CERTIFICATES",
    "MAX_PEM_BYTES",
    "MAX_TIMESTAMPS",
    "MAX_TOKEN_BYTES",
    "TimestampAuthority",
    "VerifiedTime",
    "load_pem_chain",
    "verify_token",
    "verify_tokens",
]
