"""Core formats: DSSE envelopes and PAE, RFC 8785 canonical JSON, public keys and keyids.

The layer every other part builds on; it imports only errors, codes, limits and `_internal`.
"""
