"""Attestations in OCI registries, in the layouts cosign and sigstore-js read and write.

`attach_bundle` / `attach_legacy` put an attestation on an image (an OCI 1.1 referrer, with the
referrers tag schema where the registry lacks the API; cosign's legacy ``.att`` tag);
`discover` finds an image's attestations in both layouts, and `verify_image` verifies them
offline against a trust root. Nothing listed by a registry is trusted for more than finding
candidates. docs/oci.md is the guide.
"""

from .attach import Attached, attach_bundle, attach_legacy
from .client import RegistryClient
from .credentials import Credentials, credentials_for
from .discover import Candidate, Discovery, Problem, discover
from .image import Target, resolve
from .reference import ImageRef, parse_reference
from .verify import Group, GroupOutcome, ImageVerification, group_candidates, verify_image

__all__ = [
    "Attached",
    "Candidate",
    "Credentials",
    "Discovery",
    "Group",
    "GroupOutcome",
    "ImageRef",
    "ImageVerification",
    "Problem",
    "RegistryClient",
    "Target",
    "attach_bundle",
    "attach_legacy",
    "credentials_for",
    "discover",
    "group_candidates",
    "parse_reference",
    "resolve",
    "verify_image",
]
