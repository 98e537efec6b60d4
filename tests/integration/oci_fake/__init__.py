"""The fake OCI registry of tests/oci_fake.py, tested with raw HTTP requests."""
