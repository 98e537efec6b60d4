"""Deprecated: moved to `dssesign.core.canonical`; this path goes in the next release."""

import warnings

from .core.canonical import (
    MAX_SAFE_INTEGER,
    canonicalize,
)

__all__ = ["MAX_SAFE_INTEGER", "canonicalize"]

warnings.warn(
    "dssesign.canonical moved to dssesign.core.canonical; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
