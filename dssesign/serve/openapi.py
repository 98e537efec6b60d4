"""The OpenAPI 3.1 document served at `/openapi.json`, kept by hand beside the handlers."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["OPENAPI"]

_ERROR = {
    "description": "refused",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            }
        }
    },
}
_REFUSALS = {
    "400": _ERROR,
    "401": _ERROR,
    "403": _ERROR,
    "413": _ERROR,
    "429": _ERROR,
    "503": _ERROR,
}
_NAMES = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 16}
_SIGNED = {
    "description": "the DSSE envelope and one Sigstore bundle v0.3 per signature",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["envelope", "bundles"],
                "properties": {
                    "envelope": {"$ref": "#/components/schemas/Envelope"},
                    "bundles": {"type": "array", "items": {"type": "object"}},
                    "keys": {"type": "array", "items": {"type": "object"}},
                },
            }
        }
    },
}


def _post(summary: str, scope: str, body: dict[str, Any], ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": [scope]}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body}},
            },
            "responses": {"200": ok, **_REFUSALS},
        }
    }


OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {"title": "dssesign signing service", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Envelope": {
                "type": "object",
                "required": ["payload", "payloadType", "signatures"],
                "properties": {
                    "payload": {"type": "string", "contentEncoding": "base64"},
                    "payloadType": {"type": "string"},
                    "signatures": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    },
    "paths": {
        "/v1/sign": _post(
            "sign a payload with the tenant's named keys",
            "signer.sign",
            {
                "type": "object",
                "required": ["payload", "payloadType", "keys"],
                "additionalProperties": False,
                "properties": {
                    "payload": {"type": "string", "contentEncoding": "base64"},
                    "payloadType": {"type": "string"},
                    "keys": _NAMES,
                    "tsa": {"type": "array", "items": {"type": "string"}},
                },
            },
            _SIGNED,
        ),
        "/v1/attest": _post(
            "build an in-toto Statement (validated as the CLI does) and sign it",
            "signer.sign",
            {
                "type": "object",
                "required": ["subjects", "predicateType", "predicate", "keys"],
                "additionalProperties": False,
                "properties": {
                    "subjects": {"type": "array", "items": {"type": "object"}, "minItems": 1},
                    "predicateType": {"type": "string"},
                    "predicate": {"type": "object"},
                    "keys": _NAMES,
                    "tsa": {"type": "array", "items": {"type": "string"}},
                },
            },
            _SIGNED,
        ),
        "/v1/verify": _post(
            "verify an envelope (and bundles) against the service's trust root",
            "signer.verify",
            {
                "type": "object",
                "required": ["envelope"],
                "additionalProperties": False,
                "properties": {
                    "envelope": {"$ref": "#/components/schemas/Envelope"},
                    "bundles": {"type": "array", "items": {"type": "object"}},
                    "predicateType": {"type": "string"},
                    "digests": {"type": "array", "items": {"type": "string"}},
                },
            },
            {"description": "the `dssesign verify --json` report (ok true or false)"},
        ),
        "/v1/keys": {
            "get": {
                "summary": "the caller's tenant's keys and public keys",
                "security": [{"bearer": ["signer.keys"]}],
                "responses": {"200": {"description": "keys"}, **_REFUSALS},
            }
        },
        "/healthz": {"get": {"summary": "alive", "responses": {"200": {"description": "ok"}}}},
        "/readyz": {
            "get": {
                "summary": "ready: every key's backend and the quota store answer",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}
        },
    },
}
