"""Signing profiles: one module per backend, each registering its key-reference scheme."""
