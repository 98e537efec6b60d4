"""The instance's trusted_root.json and sigstore-python ClientTrustConfig (signing config)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from .ca import TestCA
from .ctlog import CTLog
from .rekor import TransparencyLog

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
OPERATOR = "dssesign.test"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_instance(base_url: str, spki_der: bytes, start: datetime) -> dict[str, Any]:
    return {
        "baseUrl": base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": _b64(spki_der),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": _time(start)},
        },
        "logId": {"keyId": _b64(hashlib.sha256(spki_der).digest())},
    }


def trusted_root(
    *, ca: TestCA, ct_log: CTLog, tlog: TransparencyLog, fulcio_url: str, rekor_url: str
) -> dict[str, Any]:
    """A Sigstore trusted root naming the test CA chain, CT log key and transparency log key."""
    start = ca.not_before
    return {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [_log_instance(rekor_url, tlog.spki_der, start)],
        "certificateAuthorities": [
            {
                "subject": {"organization": "dssesign test", "commonName": "dssesign test root"},
                "uri": fulcio_url,
                "certChain": {
                    "certificates": [
                        {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))}
                        for cert in ca.chain
                    ]
                },
                "validFor": {"start": _time(start)},
            }
        ],
        "ctlogs": [_log_instance(f"{fulcio_url}/ct", ct_log.spki_der, start)],
        "timestampAuthorities": [],
    }


def signing_config(*, fulcio_url: str, rekor_url: str, start: datetime) -> dict[str, Any]:
    """Where to get certificates and log entries (Fulcio v1 API, Rekor v1 API, no TSA)."""

    def service(url: str) -> dict[str, Any]:
        return {
            "url": url,
            "majorApiVersion": 1,
            "validFor": {"start": _time(start)},
            "operator": OPERATOR,
        }

    return {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [service(fulcio_url)],
        "oidcUrls": [],
        "rekorTlogUrls": [service(rekor_url)],
        "tsaUrls": [],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }


def client_trust_config(
    root: dict[str, Any], *, fulcio_url: str, rekor_url: str, start: datetime
) -> dict[str, Any]:
    """What sigstore-python's `ClientTrustConfig.from_json` reads."""
    return {
        "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
        "trustedRoot": root,
        "signingConfig": signing_config(fulcio_url=fulcio_url, rekor_url=rekor_url, start=start),
    }
