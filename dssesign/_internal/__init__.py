"""Helpers the rest of dssesign shares (strict JSON, files, locks, text, workers, schemas).

Private: nothing here is API, and any of it may change in any release.
"""
