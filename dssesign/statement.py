"""Deprecated: moved to `dssesign.intoto.statement` and `dssesign.intoto.subjects`."""

import warnings

from .intoto.statement import (
    KNOWN_DIGEST_ALGORITHMS,
    PAYLOAD_TYPE,
    STATEMENT_TYPE_V01,
    STATEMENT_TYPE_V1,
    ResourceDescriptor,
    build_statement,
    parse_statement,
    statement_payload,
    validate_statement,
)
from .intoto.subjects import (
    digest_file,
    parse_subject_arg,
    subject_from_digest,
    subject_from_file,
)

__all__ = [
    "KNOWN_DIGEST_ALGORITHMS",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE_V01",
    "STATEMENT_TYPE_V1",
    "ResourceDescriptor",
    "build_statement",
    "digest_file",
    "parse_statement",
    "parse_subject_arg",
    "statement_payload",
    "subject_from_digest",
    "subject_from_file",
    "validate_statement",
]

warnings.warn(
    "dssesign.statement moved to dssesign.intoto.statement and dssesign.intoto.subjects; "
    "the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
