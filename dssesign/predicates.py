"""Deprecated: moved to `dssesign.intoto.predicates`; this path goes in the next release."""

import warnings

from .intoto.predicates import (
    CUSTOM_URI,
    CYCLONEDX_URI,
    LINK_URI,
    OPENVEX_URI,
    SLSA_PROVENANCE_V02_URI,
    SLSA_PROVENANCE_V1_URI,
    SPDX_URI,
    TEST_RESULT_URI,
    VSA_URI,
    VULN_URI,
    PredicateType,
    PredicateValidator,
    RawPredicateBuilder,
    is_rfc3339_date_time,
    json_schema_validator,
    known_predicate_types,
    lookup_predicate_type,
    prepare_predicate,
    register_predicate_type,
    resolve_predicate_type,
    validate_predicate,
)

__all__ = [
    "CUSTOM_URI",
    "CYCLONEDX_URI",
    "LINK_URI",
    "OPENVEX_URI",
    "SLSA_PROVENANCE_V02_URI",
    "SLSA_PROVENANCE_V1_URI",
    "SPDX_URI",
    "TEST_RESULT_URI",
    "VSA_URI",
    "VULN_URI",
    "PredicateType",
    "PredicateValidator",
    "RawPredicateBuilder",
    "is_rfc3339_date_time",
    "json_schema_validator",
    "known_predicate_types",
    "lookup_predicate_type",
    "prepare_predicate",
    "register_predicate_type",
    "resolve_predicate_type",
    "validate_predicate",
]

warnings.warn(
    "dssesign.predicates moved to dssesign.intoto.predicates"
    "; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
