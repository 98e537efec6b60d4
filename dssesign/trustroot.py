"""Deprecated: trust roots moved to the `dssesign.trust` package; this path goes next release."""

from __future__ import annotations

import warnings

from .trust import *  # noqa: F403 - the old module's public names, unchanged
from .trust import __all__  # noqa: F401 - re-exported

warnings.warn(
    "dssesign.trustroot is deprecated: import from dssesign.trust (or dssesign) instead",
    DeprecationWarning,
    stacklevel=2,
)
