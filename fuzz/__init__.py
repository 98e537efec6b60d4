"""Coverage-guided fuzzing of dssesign's parsers of untrusted bytes (atheris); see docs/fuzzing.md.

Each ``fuzz_<target>.py`` module holds one target: ``check(data)`` (the one-input function,
importable without atheris, so the regression tests replay findings with it), ``seeds()`` and
``DICTIONARY``. ``python -m fuzz.run`` runs the campaign (``make fuzz``).
"""
