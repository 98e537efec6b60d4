"""The Sigstore trusted root a trust root embeds, as sigstore-python reads it.

Below both the trust-root model (which refuses an unusable trusted root when it is set) and the
bundle verifier (which verifies keyless bundles against it), so neither imports the other.
sigstore-python is imported only when this is used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ..codes import Code
from ..core.canonical import canonicalize
from ..errors import VerificationError

__all__ = ["check_trusted_root", "sigstore_installed", "sigstore_verifier"]


def sigstore_installed() -> bool:
    """True when sigstore-python (the `sigstore` extra) imports; keyless verification needs it."""
    try:
        import sigstore  # noqa: F401, PLC0415 - optional extra
    except ImportError:
        return False
    return True


def check_trusted_root(trusted_root: Mapping[str, Any]) -> None:
    """Parse a trusted_root.json with sigstore-python, as verification will (no-op without it)."""
    if sigstore_installed():
        sigstore_verifier(canonicalize(trusted_root))


@functools.lru_cache(maxsize=8)
def sigstore_verifier(trusted_root_json: bytes) -> Any:
    """sigstore-python's offline Verifier for one embedded trusted root (built once)."""
    from pydantic import ValidationError  # noqa: PLC0415 - with sigstore, optional
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - on first use
    from sigstore.models import TrustedRoot  # noqa: PLC0415 - on first use
    from sigstore.verify import Verifier  # noqa: PLC0415 - on first use
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel  # noqa: PLC0415 - on first use

    try:
        trusted = TrustedRoot(TrustedRootModel.from_json(trusted_root_json))
        verifier = Verifier(trusted_root=trusted)
        trusted.get_fulcio_certs()  # refuse a root with no CA now, not per bundle
    except (ValidationError, SigstoreError, ValueError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise VerificationError(
            Code.TRUST_ROOT_INVALID, f"the embedded Sigstore trusted root is unusable: {first}"
        ) from None
    return verifier
