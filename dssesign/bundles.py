"""Deprecated: moved to `dssesign.sign.bundles`; this path goes in the next release."""

import warnings

from .sign.bundles import (
    BUNDLE_MEDIA_TYPE,
    BUNDLE_SUFFIX,
    DEFAULT_STEM,
    BundleFile,
    BundleSource,
    bundle_json,
    bundle_names,
    bundle_stem,
    bundles_for,
    is_keyless,
    keyed_bundle,
    prepare_bundle_dir,
    write_bundles,
)

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "BUNDLE_SUFFIX",
    "DEFAULT_STEM",
    "BundleFile",
    "BundleSource",
    "bundle_json",
    "bundle_names",
    "bundle_stem",
    "bundles_for",
    "is_keyless",
    "keyed_bundle",
    "prepare_bundle_dir",
    "write_bundles",
]

warnings.warn(
    "dssesign.bundles moved to dssesign.sign.bundles; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
