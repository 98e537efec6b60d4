"""dssesign's one-pass SPDX checks agree with spdx-tools, which they replace for speed.

spdx-tools (the SPDX project's own library) is kept as the reference: every document here is
judged by both, and a verdict that differs is a bug in one of them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dssesign.errors import PredicateError
from dssesign.intoto.predicates import SPDX_URI, validate_predicate

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "predicates" / "spdx-2.3.json"


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return loaded


def _spdx_tools_accepts(document: dict[str, Any]) -> bool:
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    try:
        parsed = JsonLikeDictParser().parse(copy.deepcopy(document))  # type: ignore[no-untyped-call]
        return not validate_full_spdx_document(parsed)
    except SPDXParsingError:
        return False
    except Exception:  # spdx-tools itself crashes on some expressions ("MIT OR"): a refusal
        return False


def _dssesign_accepts(document: dict[str, Any]) -> bool:
    try:
        validate_predicate(SPDX_URI, document)
    except PredicateError:
        return False
    return True


Mutation = Callable[[dict[str, Any]], None]


def _add_file(doc: dict[str, Any], *, owner_files: list[str] | None = None, **changes: Any) -> None:
    if owner_files is not None:
        doc["packages"][0]["hasFiles"] = owner_files
    file = {
        "SPDXID": "SPDXRef-File-a",
        "fileName": "./a.txt",
        "checksums": [{"algorithm": "SHA1", "checksumValue": "a" * 40}],
        "licenseConcluded": "MIT",
        "copyrightText": "NOASSERTION",
    }
    file.update(changes)
    doc["files"] = [file]


REFUSED: dict[str, Mutation] = {
    "package id twice": lambda d: d["packages"][1].update(SPDXID="SPDXRef-Package-demo"),
    "id not SPDXRef-": lambda d: d["packages"][1].update(SPDXID="Package-x"),
    "document id": lambda d: d.update(SPDXID="SPDXRef-DOC"),
    "data licence": lambda d: d.update(dataLicense="MIT"),
    "namespace with fragment": lambda d: d.update(documentNamespace="https://x.example/a#b"),
    "creator without kind": lambda d: d["creationInfo"].update(creators=["someone"]),
    "relationship to nothing": lambda d: d["relationships"][0].update(
        relatedSpdxElement="SPDXRef-nowhere"
    ),
    "relationship from nothing": lambda d: d["relationships"][0].update(
        spdxElementId="SPDXRef-nowhere"
    ),
    "unknown relationship type": lambda d: d["relationships"][0].update(relationshipType="LIKES"),
    "describes nothing": lambda d: d.pop("documentDescribes"),
    "describes a missing element": lambda d: d.update(documentDescribes=["SPDXRef-gone"]),
    "sha1 too short": lambda d: d["packages"][0]["checksums"][0].update(
        algorithm="SHA1", checksumValue="ab"
    ),
    "upper-case hex": lambda d: d["packages"][0]["checksums"][0].update(checksumValue="A" * 64),
    "unknown licence ref": lambda d: d["packages"][1].update(licenseConcluded="LicenseRef-x"),
    "broken licence expression": lambda d: d["packages"][1].update(licenseDeclared="MIT OR"),
    "download location with spaces": lambda d: d["packages"][1].update(downloadLocation="a b"),
    "supplier without kind": lambda d: d["packages"][1].update(supplier="ACME"),
    "hasFiles with filesAnalyzed false": lambda d: _add_file(d, owner_files=["SPDXRef-File-a"]),
    "file without SHA1": lambda d: _add_file(
        d, checksums=[{"algorithm": "SHA256", "checksumValue": "b" * 64}]
    ),
    "purl locator": lambda d: d["packages"][0]["externalRefs"][0].update(
        referenceLocator="pypi/dssesign"
    ),
    "reference type of another category": lambda d: d["packages"][0]["externalRefs"][0].update(
        referenceType="cpe23Type"
    ),
    "external document ref with a bad id": lambda d: d.update(
        externalDocumentRefs=[
            {
                "externalDocumentId": "Doc-1",
                "spdxDocument": "https://x.example/doc",
                "checksum": {"algorithm": "SHA1", "checksumValue": "c" * 40},
            }
        ]
    ),
    "2.2 package without licenseDeclared": lambda d: d.update(spdxVersion="SPDX-2.2"),
}


def _defined_licence_ref(d: dict[str, Any]) -> None:
    d["hasExtractedLicensingInfos"] = [{"licenseId": "LicenseRef-x", "extractedText": "x"}]
    d["packages"][1]["licenseConcluded"] = "LicenseRef-x AND MIT"


def _describes_by_relationship(d: dict[str, Any]) -> None:
    d.pop("documentDescribes")
    d["relationships"].append(
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Package-demo",
        }
    )


def _external_element(d: dict[str, Any]) -> None:
    d["externalDocumentRefs"] = [
        {
            "externalDocumentId": "DocumentRef-base",
            "spdxDocument": "https://x.example/doc",
            "checksum": {"algorithm": "SHA1", "checksumValue": "c" * 40},
        }
    ]
    d["relationships"][0]["relatedSpdxElement"] = "DocumentRef-base:SPDXRef-x"


def _analyzed_package_with_a_file(d: dict[str, Any]) -> None:
    _add_file(d, owner_files=["SPDXRef-File-a"])
    d["packages"][0].update(
        filesAnalyzed=True,
        packageVerificationCode={"packageVerificationCodeValue": "d" * 40},
        licenseInfoFromFiles=["MIT"],
    )


ACCEPTED: dict[str, Mutation] = {
    "as is": lambda d: None,
    "licence ref that is defined": _defined_licence_ref,
    "describes by relationship": _describes_by_relationship,
    "relationship to NOASSERTION": lambda d: d["relationships"][0].update(
        relatedSpdxElement="NOASSERTION"
    ),
    "external element": _external_element,
    "file in an analyzed package": _analyzed_package_with_a_file,
    "vcs download location": lambda d: d["packages"][1].update(
        downloadLocation="git+https://git.example.com/repo.git@v1.0#sub"
    ),
    "licence exception": lambda d: d["packages"][1].update(
        licenseDeclared="GPL-2.0-only WITH Classpath-exception-2.0"
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_both_refuse(name: str) -> None:
    document = _document()
    REFUSED[name](document)
    assert not _spdx_tools_accepts(document), f"spdx-tools accepts {name}"
    assert not _dssesign_accepts(document), f"dssesign accepts {name}"


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_both_accept(name: str) -> None:
    document = _document()
    ACCEPTED[name](document)
    assert _spdx_tools_accepts(document), f"spdx-tools refuses {name}"
    assert _dssesign_accepts(document), f"dssesign refuses {name}"


def test_stricter_than_spdx_tools_where_the_spec_is_plain() -> None:
    """hasFiles names files (SPDX 2.3 section 7.30); spdx-tools only checks the id exists."""
    document = _document()
    _add_file(document, owner_files=["SPDXRef-Package-cryptography"])
    document["packages"][0]["filesAnalyzed"] = True
    assert not _dssesign_accepts(document)


def test_ten_thousand_packages_are_checked_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reference is one lookup: count the id-index builds and the reference checks."""
    from dssesign.intoto import _spdx

    document = _document()
    template = document["packages"][1]
    count = 10_000
    document["packages"] += [
        dict(template, SPDXID=f"SPDXRef-p{i}", name=f"p{i}") for i in range(count)
    ]
    document["relationships"] = [
        {
            "spdxElementId": "SPDXRef-Package-demo",
            "relationshipType": "DEPENDS_ON",
            "relatedSpdxElement": f"SPDXRef-p{i}",
        }
        for i in range(count)
    ]
    calls = {"index": 0, "reference": 0}
    real_index, real_reference = _spdx._index, _spdx._check_reference

    def index(spdx: Any) -> None:
        calls["index"] += 1
        real_index(spdx)

    def reference(*args: Any, **kwargs: Any) -> None:
        calls["reference"] += 1
        real_reference(*args, **kwargs)

    monkeypatch.setattr(_spdx, "_index", index)
    monkeypatch.setattr(_spdx, "_check_reference", reference)
    validate_predicate(SPDX_URI, document)
    assert calls == {"index": 1, "reference": 2 * count + 1}
