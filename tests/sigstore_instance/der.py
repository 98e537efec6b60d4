"""The two DER encodings the instance needs for raw X.509 extension values."""

from __future__ import annotations


def length(size: int) -> bytes:
    """A DER definite length."""
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def utf8_string(text: str) -> bytes:
    """An ASN.1 UTF8String (tag 0x0C)."""
    data = text.encode()
    return b"\x0c" + length(len(data)) + data


def octet_string(data: bytes) -> bytes:
    """An ASN.1 OCTET STRING (tag 0x04)."""
    return b"\x04" + length(len(data)) + data
