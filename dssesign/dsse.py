"""Deprecated: moved to `dssesign.core.dsse`; this path goes in the next release."""

import warnings

from .core.dsse import (
    Envelope,
    Signature,
    b64decode,
    b64encode,
    pae,
)

__all__ = ["Envelope", "Signature", "b64decode", "b64encode", "pae"]

warnings.warn(
    "dssesign.dsse moved to dssesign.core.dsse; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
