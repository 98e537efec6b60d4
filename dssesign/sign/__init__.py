"""Signing: the `Signer` protocol and scheme table, the multi-profile signer, bundles out.

Never imported by `dssesign.verify` (an import-linter contract): the offline verifier stays
small enough to audit.
"""
