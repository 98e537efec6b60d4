"""SPDX 2.2/2.3 semantic checks in one pass: ids, references, checksums, licences.

spdx-tools checks the same rules but rebuilds the list of every SPDX id for each reference it
checks, and scans every relationship for each package: 2,000 packages took 12.6 s, 10,000 many
minutes. Here every id is indexed once and every check is a set or dict lookup, so a document
is checked in time linear in its size. The structure (types, required members) is checked
before this by the schema in ``predicates/spdx-2-structure.schema.json``; this module assumes
it holds. Licence expressions are parsed by the `license-expression` library (what spdx-tools
uses), once per distinct expression.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from .._internal.text import clip
from ..errors import PredicateError

_ELEMENT_ID: Final = re.compile(r"SPDXRef-[A-Za-z0-9.\-]+")
_DOCUMENT_REF: Final = re.compile(r"DocumentRef-[A-Za-z0-9.\-]+")
_LICENSE_REF: Final = re.compile(r"LicenseRef-[A-Za-z0-9.\-]+")
_ACTOR: Final = re.compile(r"(Person|Organization|Tool): \S.*", re.DOTALL)
_SUPPLIER: Final = re.compile(r"(Person|Organization): \S.*", re.DOTALL)
_URI_NO_FRAGMENT: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s#]+")
#: spdx-tools' reading of the spec's download location: NONE, NOASSERTION, a URL, or a VCS
#: location (git+https://...@rev#path, hg+..., svn+..., bzr+...).
_DOWNLOAD_LOCATION: Final = re.compile(
    r"NONE|NOASSERTION|((git|hg|svn|bzr)\+)?[a-zA-Z][a-zA-Z0-9+.\-]*://\S+|"
    r"(git|hg|svn|bzr)\+\S+@\S+"
)
_HEX: Final = re.compile(r"[0-9a-f]+")
#: Checksum algorithm -> hex digits (None: any even length).
_CHECKSUMS: Final[Mapping[str, int | None]] = {
    "SHA1": 40,
    "SHA224": 56,
    "SHA256": 64,
    "SHA384": 96,
    "SHA512": 128,
    "SHA3-256": 64,
    "SHA3-384": 96,
    "SHA3-512": 128,
    "BLAKE2b-256": 64,
    "BLAKE2b-384": 96,
    "BLAKE2b-512": 128,
    "BLAKE3": None,
    "MD2": 32,
    "MD4": 32,
    "MD5": 32,
    "MD6": None,
    "ADLER32": 8,
}
_RELATIONSHIPS: Final = frozenset(
    (
        "DESCRIBES",
        "DESCRIBED_BY",
        "CONTAINS",
        "CONTAINED_BY",
        "DEPENDS_ON",
        "DEPENDENCY_OF",
        "DEPENDENCY_MANIFEST_OF",
        "BUILD_DEPENDENCY_OF",
        "DEV_DEPENDENCY_OF",
        "OPTIONAL_DEPENDENCY_OF",
        "PROVIDED_DEPENDENCY_OF",
        "TEST_DEPENDENCY_OF",
        "RUNTIME_DEPENDENCY_OF",
        "EXAMPLE_OF",
        "GENERATES",
        "GENERATED_FROM",
        "ANCESTOR_OF",
        "DESCENDANT_OF",
        "VARIANT_OF",
        "DISTRIBUTION_ARTIFACT",
        "PATCH_FOR",
        "PATCH_APPLIED",
        "COPY_OF",
        "FILE_ADDED",
        "FILE_DELETED",
        "FILE_MODIFIED",
        "EXPANDED_FROM_ARCHIVE",
        "DYNAMIC_LINK",
        "STATIC_LINK",
        "DATA_FILE_OF",
        "TEST_CASE_OF",
        "BUILD_TOOL_OF",
        "DEV_TOOL_OF",
        "TEST_OF",
        "TEST_TOOL_OF",
        "DOCUMENTATION_OF",
        "OPTIONAL_COMPONENT_OF",
        "METAFILE_OF",
        "PACKAGE_OF",
        "AMENDS",
        "PREREQUISITE_FOR",
        "HAS_PREREQUISITE",
        "OTHER",
    )
)
_RELATIONSHIPS_23: Final = frozenset({"REQUIREMENT_DESCRIPTION_FOR", "SPECIFICATION_FOR"})
_PURPOSES: Final = frozenset(
    (
        "APPLICATION",
        "FRAMEWORK",
        "LIBRARY",
        "CONTAINER",
        "OPERATING-SYSTEM",
        "DEVICE",
        "FIRMWARE",
        "SOURCE",
        "ARCHIVE",
        "FILE",
        "INSTALL",
        "OTHER",
    )
)
_FILE_TYPES: Final = frozenset(
    (
        "SOURCE",
        "BINARY",
        "ARCHIVE",
        "APPLICATION",
        "AUDIO",
        "IMAGE",
        "TEXT",
        "VIDEO",
        "DOCUMENTATION",
        "SPDX",
        "OTHER",
    )
)
#: externalRefs: category -> the reference types the spec lists for it (None: any).
_REF_TYPES: Final[Mapping[str, frozenset[str] | None]] = {
    "SECURITY": frozenset({"cpe22Type", "cpe23Type", "advisory", "fix", "url", "swid"}),
    "PACKAGE-MANAGER": frozenset({"maven-central", "npm", "nuget", "bower", "purl"}),
    "PACKAGE_MANAGER": frozenset({"maven-central", "npm", "nuget", "bower", "purl"}),
    "PERSISTENT-ID": frozenset({"swh", "gitoid"}),
    "PERSISTENT_ID": frozenset({"swh", "gitoid"}),
    "OTHER": None,
}
_LOCATORS: Final[Mapping[str, re.Pattern[str]]] = {
    "purl": re.compile(r"pkg:[A-Za-z.+\-][A-Za-z0-9.+\-]*/\S+"),
    "cpe23Type": re.compile(r"cpe:2\.3:[aho\*\-](:[^:\s]+){10}"),
    "cpe22Type": re.compile(r"cpe:/[AHOaho]?(:[^:\s]*){0,6}"),
}
_NO_VALUE: Final = frozenset({"NONE", "NOASSERTION"})
_LICENSE_FIELDS: Final = (
    ("licenseConcluded", False),
    ("licenseDeclared", False),
    ("licenseInfoFromFiles", True),
    ("licenseInfoInFiles", True),
    ("licenseInfoInSnippets", True),
)
#: SPDX 2.2 requires these of every package / file (2.3 made them optional).
_REQUIRED_22: Final[Mapping[str, tuple[str, ...]]] = {
    "packages": ("licenseConcluded", "licenseDeclared", "copyrightText"),
    "files": ("licenseConcluded", "licenseInfoInFiles", "copyrightText"),
}


def _fail(path: str, message: str) -> PredicateError:
    return PredicateError(f"{path}: {message}", path)


def _show(value: object) -> str:
    return clip(repr(value), 120)


@functools.cache
def _licensing() -> Any:
    from license_expression import get_spdx_licensing  # noqa: PLC0415 - optional extra

    return get_spdx_licensing()


def require_license_library() -> None:
    """ImportError if `license-expression` (the sbom extra) is missing."""
    _licensing()


@functools.lru_cache(maxsize=4096)
def _license_symbols(expression: str) -> tuple[str | None, tuple[str, ...]]:
    """(why the expression does not parse, or None; its symbols not on the SPDX list)."""
    from license_expression import ExpressionError, ExpressionParseError  # noqa: PLC0415 - on first use

    licensing = _licensing()
    try:
        info = licensing.validate(expression)
    except Exception as exc:  # the library fails on some input ("MIT OR"): still a refusal
        return f"cannot be parsed: {type(exc).__name__}", ()
    unknown = tuple(symbol for symbol in info.invalid_symbols if symbol)
    errors = [e for e in info.errors if not str(e).startswith("Unknown license key")]
    if errors:
        return "; ".join(str(e) for e in errors), unknown
    try:
        # An exception used as a licence, or a licence after WITH, as spdx-tools checks it.
        licensing.parse(expression, validate=True, strict=True)
    except ExpressionParseError as exc:
        return str(exc), unknown
    except ExpressionError:
        pass  # unknown symbols: judged against the document's LicenseRefs by the caller
    except Exception as exc:
        return f"cannot be parsed: {type(exc).__name__}", unknown
    return None, unknown


class _Document:
    """One SPDX document, indexed once."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.doc = document
        self.version = document["spdxVersion"]
        self.ids: dict[str, str] = {}
        self.files: set[str] = set()
        self.external: set[str] = set()
        self.license_refs: set[str] = set()

    def element_lists(self) -> Iterator[tuple[str, int, Mapping[str, Any]]]:
        for kind in ("packages", "files", "snippets"):
            for index, element in enumerate(self.doc.get(kind) or ()):
                yield kind, index, element


def check_spdx(document: Mapping[str, Any]) -> None:
    """Raise PredicateError naming the JSON path of the first rule `document` breaks."""
    spdx = _Document(document)
    _check_document(spdx)
    _index(spdx)
    for kind, index, element in spdx.element_lists():
        path = f"$.{kind}[{index}]"
        if spdx.version == "SPDX-2.2":
            for name in _REQUIRED_22.get(kind, ()):
                if name not in element:
                    raise _fail(f"{path}.{name}", f"required in SPDX 2.2 ({name!r} is missing)")
        _check_checksums(element.get("checksums") or (), f"{path}.checksums")
        _check_licenses(spdx, element, path)
        for index_a, annotation in enumerate(element.get("annotations") or ()):
            _check_actor(annotation["annotator"], f"{path}.annotations[{index_a}].annotator")
        if kind == "packages":
            _check_package(spdx, element, path)
        elif kind == "files":
            _check_file(element, path)
        else:
            _check_reference(spdx, element["snippetFromFile"], f"{path}.snippetFromFile", file=True)
    _check_relationships(spdx)


def _check_document(spdx: _Document) -> None:
    doc = spdx.doc
    if doc["SPDXID"] != "SPDXRef-DOCUMENT":
        raise _fail("$.SPDXID", f'must be "SPDXRef-DOCUMENT", got {_show(doc["SPDXID"])}')
    if doc["dataLicense"] != "CC0-1.0":
        raise _fail("$.dataLicense", f'must be "CC0-1.0", got {_show(doc["dataLicense"])}')
    if not _URI_NO_FRAGMENT.fullmatch(doc["documentNamespace"]):
        raise _fail(
            "$.documentNamespace",
            "document_namespace must be an absolute URI without a '#' part, got "
            f"{_show(doc['documentNamespace'])}",
        )
    for index, creator in enumerate(doc["creationInfo"]["creators"]):
        _check_actor(creator, f"$.creationInfo.creators[{index}]")
    for index, annotation in enumerate(doc.get("annotations") or ()):
        _check_actor(annotation["annotator"], f"$.annotations[{index}].annotator")
    for index, ref in enumerate(doc.get("externalDocumentRefs") or ()):
        path = f"$.externalDocumentRefs[{index}]"
        ref_id = ref["externalDocumentId"]
        if not _DOCUMENT_REF.fullmatch(ref_id):
            raise _fail(
                f"{path}.externalDocumentId", f"{_show(ref_id)} is not DocumentRef-[idstring]"
            )
        if ref_id in spdx.external:
            raise _fail(f"{path}.externalDocumentId", f"{_show(ref_id)} is listed twice")
        spdx.external.add(ref_id)
        if not _URI_NO_FRAGMENT.fullmatch(ref["spdxDocument"]):
            raise _fail(f"{path}.spdxDocument", "must be an absolute URI without a '#' part")
        if ref["checksum"]["algorithm"] != "SHA1":
            raise _fail(f"{path}.checksum.algorithm", "an external document's checksum is SHA1")
        _check_checksums([ref["checksum"]], f"{path}.checksum", single=True)
    for index, info in enumerate(doc.get("hasExtractedLicensingInfos") or ()):
        path = f"$.hasExtractedLicensingInfos[{index}].licenseId"
        license_id = info["licenseId"]
        if not _LICENSE_REF.fullmatch(license_id):
            raise _fail(path, f"{_show(license_id)} is not LicenseRef-[idstring]")
        if license_id in spdx.license_refs:
            raise _fail(path, f"{_show(license_id)} is defined twice")
        spdx.license_refs.add(license_id)


def _index(spdx: _Document) -> None:
    spdx.ids["SPDXRef-DOCUMENT"] = "$"
    for kind, index, element in spdx.element_lists():
        path = f"$.{kind}[{index}].SPDXID"
        element_id = element["SPDXID"]
        if not _ELEMENT_ID.fullmatch(element_id):
            raise _fail(path, f"{_show(element_id)} is not SPDXRef-[idstring]")
        first = spdx.ids.setdefault(element_id, path)
        if first != path:
            raise _fail(path, f"{_show(element_id)} is already the SPDXID of {first}")
        if kind == "files":
            spdx.files.add(element_id)


def _check_reference(
    spdx: _Document, value: str, path: str, *, file: bool = False, none_ok: bool = False
) -> None:
    if none_ok and value in _NO_VALUE:
        return
    if ":" in value:
        document_ref, _, element_id = value.partition(":")
        if document_ref not in spdx.external:
            raise _fail(path, f"did not find the external document reference {_show(document_ref)}")
        if not _ELEMENT_ID.fullmatch(element_id):
            raise _fail(path, f"{_show(element_id)} is not SPDXRef-[idstring]")
        return
    if value not in spdx.ids:
        raise _fail(
            path, f"did not find the referenced spdx_id {_show(value)} in the SPDX document"
        )
    if file and value not in spdx.files:
        raise _fail(path, f"{_show(value)} is not a file of this document")


def _check_actor(value: str, path: str, *, pattern: re.Pattern[str] = _ACTOR) -> None:
    if value != "NOASSERTION" and not pattern.fullmatch(value):
        kinds = "Person, Organization or Tool" if pattern is _ACTOR else "Person or Organization"
        raise _fail(path, f"{_show(value)} must be '<{kinds}>: name' or NOASSERTION")


def _check_checksums(checksums: Any, path: str, *, single: bool = False) -> None:
    for index, checksum in enumerate(checksums):
        where = path if single else f"{path}[{index}]"
        algorithm, value = checksum["algorithm"], checksum["checksumValue"]
        if algorithm not in _CHECKSUMS:
            raise _fail(
                f"{where}.algorithm",
                f"{_show(algorithm)} is not a valid ChecksumAlgorithm ({', '.join(_CHECKSUMS)})",
            )
        length = _CHECKSUMS[algorithm]
        if not _HEX.fullmatch(value) or (
            len(value) != length if length is not None else len(value) % 2
        ):
            digits = f"{length}" if length is not None else "an even number of"
            raise _fail(
                f"{where}.checksumValue",
                f"value of ChecksumAlgorithm.{algorithm} must consist of {digits} lowercase "
                f"hexadecimal digits, got {_show(value)}",
            )


def _check_licenses(spdx: _Document, element: Mapping[str, Any], path: str) -> None:
    for name, is_list in _LICENSE_FIELDS:
        if name not in element:
            continue
        values = element[name] if is_list else [element[name]]
        for index, expression in enumerate(values):
            where = f"{path}.{name}[{index}]" if is_list else f"{path}.{name}"
            _check_license(spdx, expression, where)


def _check_license(spdx: _Document, expression: str, path: str) -> None:
    if expression in _NO_VALUE:
        return
    error, unknown = _license_symbols(expression)
    if error is not None:
        raise _fail(path, f"not a valid SPDX LicenseExpression ({error}): {_show(expression)}")
    for symbol in unknown:
        if ":" in symbol:
            document_ref, _, license_ref = symbol.partition(":")
            if document_ref not in spdx.external or not _LICENSE_REF.fullmatch(license_ref):
                raise _fail(path, f"unknown external licence reference {_show(symbol)}")
        elif symbol not in spdx.license_refs:
            raise _fail(
                path,
                f"unrecognized license reference {_show(symbol)}: a LicenseExpression may only "
                "use SPDX licence list ids or LicenseRefs from hasExtractedLicensingInfos",
            )


def _check_package(spdx: _Document, package: Mapping[str, Any], path: str) -> None:
    location = package["downloadLocation"]
    if not _DOWNLOAD_LOCATION.fullmatch(location):
        raise _fail(
            f"{path}.downloadLocation",
            f"download_location must be NONE, NOASSERTION, a URL or a VCS location, got "
            f"{_show(location)}",
        )
    for name in ("supplier", "originator"):
        if name in package:
            _check_actor(package[name], f"{path}.{name}", pattern=_SUPPLIER)
    analyzed = package.get("filesAnalyzed", spdx.version == "SPDX-2.2")
    code = package.get("packageVerificationCode")
    if not analyzed:
        for name in ("hasFiles", "packageVerificationCode", "licenseInfoFromFiles"):
            if package.get(name):
                raise _fail(f"{path}.{name}", "must not be given when filesAnalyzed is false")
    if code is not None:
        value = code["packageVerificationCodeValue"]
        if not _HEX.fullmatch(value) or len(value) != 40:
            raise _fail(
                f"{path}.packageVerificationCode.packageVerificationCodeValue",
                f"must be 40 lowercase hexadecimal digits, got {_show(value)}",
            )
    for index, file_id in enumerate(package.get("hasFiles") or ()):
        _check_reference(spdx, file_id, f"{path}.hasFiles[{index}]", file=True)
    purpose = package.get("primaryPackagePurpose")
    if purpose is not None and (spdx.version == "SPDX-2.2" or purpose not in _PURPOSES):
        raise _fail(
            f"{path}.primaryPackagePurpose",
            f"{_show(purpose)} is not an SPDX 2.3 purpose ({', '.join(sorted(_PURPOSES))})",
        )
    if spdx.version == "SPDX-2.2":
        for name in ("releaseDate", "builtDate", "validUntilDate"):
            if name in package:
                raise _fail(f"{path}.{name}", "is new in SPDX 2.3")
    for index, ref in enumerate(package.get("externalRefs") or ()):
        _check_external_ref(ref, f"{path}.externalRefs[{index}]")


def _check_external_ref(ref: Mapping[str, Any], path: str) -> None:
    category, kind, locator = (
        ref["referenceCategory"],
        ref["referenceType"],
        ref["referenceLocator"],
    )
    if category not in _REF_TYPES:
        raise _fail(
            f"{path}.referenceCategory",
            f"{_show(category)} is not one of SECURITY, PACKAGE-MANAGER, PERSISTENT-ID, OTHER",
        )
    allowed = _REF_TYPES[category]
    if allowed is not None and kind not in allowed:
        raise _fail(
            f"{path}.referenceType",
            f"{_show(kind)} is not a reference type of category {category} "
            f"({', '.join(sorted(allowed))})",
        )
    pattern = _LOCATORS.get(kind)
    if pattern is not None and not pattern.fullmatch(locator):
        raise _fail(f"{path}.referenceLocator", f"{_show(locator)} is not a valid {kind}")
    if any(char.isspace() for char in locator):
        raise _fail(f"{path}.referenceLocator", "must not contain whitespace")


def _check_file(file: Mapping[str, Any], path: str) -> None:
    if not any(checksum["algorithm"] == "SHA1" for checksum in file["checksums"]):
        raise _fail(f"{path}.checksums", "a file needs a SHA1 checksum")
    for index, kind in enumerate(file.get("fileTypes") or ()):
        if kind not in _FILE_TYPES:
            raise _fail(f"{path}.fileTypes[{index}]", f"{_show(kind)} is not an SPDX file type")


def _check_relationships(spdx: _Document) -> None:
    doc = spdx.doc
    describes = False
    for index, element_id in enumerate(doc.get("documentDescribes") or ()):
        _check_reference(spdx, element_id, f"$.documentDescribes[{index}]")
        describes = True
    types = _RELATIONSHIPS | (_RELATIONSHIPS_23 if spdx.version == "SPDX-2.3" else frozenset())
    for index, relationship in enumerate(doc.get("relationships") or ()):
        path = f"$.relationships[{index}]"
        kind = relationship["relationshipType"]
        if kind not in types:
            raise _fail(f"{path}.relationshipType", f"{_show(kind)} is not an SPDX relationship")
        source, target = relationship["spdxElementId"], relationship["relatedSpdxElement"]
        _check_reference(spdx, source, f"{path}.spdxElementId")
        _check_reference(spdx, target, f"{path}.relatedSpdxElement", none_ok=True)
        if (kind == "DESCRIBES" and source == "SPDXRef-DOCUMENT") or (
            kind == "DESCRIBED_BY" and target == "SPDXRef-DOCUMENT"
        ):
            describes = True
    if not describes:
        raise _fail(
            "$.documentDescribes",
            "the document describes nothing: give documentDescribes or a relationship "
            '"SPDXRef-DOCUMENT DESCRIBES <element>"',
        )
